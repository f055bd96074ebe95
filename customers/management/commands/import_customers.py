"""python manage.py import_customers FILE.csv [--dry-run] [--delimiter ;] [--source NAME]"""

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from customers.services.imports import customer_import

SHOWN_ERRORS = 50


class Command(BaseCommand):
    help = "Import customer profiles from a CSV file (same rules as the admin import)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the CSV file (UTF-8, header of attribute keys).")
        parser.add_argument("--dry-run", action="store_true", help="Validate and preview; write nothing.")
        parser.add_argument("--delimiter", choices=[",", ";"], help="Cell delimiter (sniffed from the header).")
        parser.add_argument("--source", help="`source` attribute for profiles this file creates.")

    def handle(self, *args, **options):
        progress = _Progress(self.stderr if options["verbosity"] > 0 else None)
        try:
            result = customer_import(
                path_or_file=options["file"],
                dry_run=options["dry_run"],
                delimiter=options["delimiter"],
                source=options["source"],
                progress=progress,
            )
        except FileNotFoundError:
            raise CommandError(f"No such file: {options['file']}")
        progress.finish()
        for notice in result.notices:
            self.stdout.write(f"Notice: {notice}")
        if result.file_error:
            raise CommandError(result.file_error)
        verb = "Would create" if result.dry_run else "Created"
        summary = f"{verb}: {result.created}, updated: {result.updated}, unchanged: {result.unchanged}"
        self.stdout.write(f"{summary}, rejected: {result.rejected}")
        if result.rejected:
            for error in result.errors[:SHOWN_ERRORS]:
                column = f" [{error['column']}]" if error["column"] else ""
                self.stdout.write(f"  line {error['line']}{column}: {error['message']}")
            if result.error_total > SHOWN_ERRORS:
                self.stdout.write(f"  ... {result.error_total} bad rows in total")
            raise CommandError(f"{result.rejected} bad rows; nothing was imported.")
        if not result.dry_run:
            self.stdout.write(self.style.SUCCESS("Import finished."))


class _Progress:
    """A plain stderr progress bar: one line rewritten with \\r on a terminal, dots otherwise."""

    WIDTH = 30

    def __init__(self, stream):
        self.stream = stream
        self.started = time.monotonic()
        self.tty = bool(stream) and getattr(sys.stderr, "isatty", lambda: False)()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.stream or not total:
            return
        share = min(done / total, 1.0)
        filled = int(share * self.WIDTH)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%} {done}/{total} lines, {rate:,.0f}/s"
        self.stream.write(("\r" if self.tty else "") + line, ending="" if self.tty else "\n")
        self.stream.flush()
        self.shown = True

    def finish(self):
        if self.stream and self.shown and self.tty:
            self.stream.write("")
