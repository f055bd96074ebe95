"""`manage.py seed_demo`: deterministic demo data (decisions 51)."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from customers.demo import demo_seed
from customers.models import Customer
from customers.normalize import NormalizationError, parse_datetime


class Command(BaseCommand):
    help = "Load demo customers and events. The same --seed and --now always give the same data."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="Random seed (default 42).")
        parser.add_argument(
            "--now", help="ISO datetime the demo ends at (default: now, to the minute); UTC if no offset."
        )
        parser.add_argument("--customers", type=int, default=5000, help="Number of customers (default 5000).")
        parser.add_argument(
            "--events", type=int, default=200_000, help="Approximate number of events (default 200000)."
        )
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when customers already exist.")

    def handle(self, *args, seed, now, customers, events, if_empty, **options):
        if if_empty and Customer.objects.exists():
            self.stdout.write("Customers already exist; demo data not loaded.")
            return
        if customers < 0 or events < 0:
            raise CommandError("--customers and --events must not be negative.")
        try:
            at = parse_datetime(now) if now else timezone.now().replace(second=0, microsecond=0)
        except NormalizationError as exc:
            raise CommandError(str(exc)) from exc
        started = time.monotonic()
        summary = demo_seed(seed=seed, now=at, customers=customers, events=events)
        elapsed = time.monotonic() - started
        personas = ", ".join(f"{name} {count}" for name, count in sorted(summary.personas.items()))
        self.stdout.write(
            self.style.SUCCESS(f"Demo data loaded in {elapsed:.1f} s (seed {seed}, now {at.isoformat()}):")
            + f"\n  {summary.customers} customers ({summary.identified} identified, {summary.anonymous} anonymous)"
            + f"\n  {summary.events} events, {summary.orders} orders, revenue {summary.revenue:,.2f}"
            + f"\n  {summary.sources} sources, {summary.tags} tags, 4 custom attributes"
            + f"\n  personas: {personas}"
            + "\nSegments are recomputed by the Celery worker and beat (started by `make run`)."
        )
