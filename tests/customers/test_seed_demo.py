import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Count, Max, Min

from customers.demo import demo_seed
from customers.models import AttributeDefinition, Customer, CustomerIdentity, Event, Source, Tag

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def _snapshot():
    """Every generated row, keyed by stable values (row ids depend on the database's sequences)."""

    def key(customer_id):
        return keys[customer_id]

    keys = {}
    customers = []
    for c in Customer.objects.order_by("id"):
        anon = list(c.identities.values_list("value", flat=True))
        keys[c.pk] = c.external_id or anon[0]
        fields = {f.attname: getattr(c, f.attname) for f in Customer._meta.concrete_fields if f.attname != "id"}
        customers.append((fields, sorted(c.tags.values_list("name", flat=True)), anon))
    events = [
        (key(e["customer_id"]), e["source__name"], e["name"], e["timestamp"], e["received_at"], e["properties"],
         e["context"], e["message_id"])
        for e in Event.objects.order_by("id").values(
            "customer_id", "source__name", "name", "timestamp", "received_at", "properties", "context", "message_id"
        )
    ]  # fmt: skip
    sources = sorted(Source.objects.values_list("name", "write_key", "enabled"))
    return customers, events, sources


def _wipe():
    Event.objects.all().delete()
    Customer.objects.all().delete()
    Source.objects.all().delete()
    Tag.objects.all().delete()


def test_same_seed_and_now_give_identical_rows():
    demo_seed(seed=7, now=NOW, customers=50, events=500)
    first = _snapshot()
    _wipe()
    demo_seed(seed=7, now=NOW, customers=50, events=500)
    assert _snapshot() == first
    _wipe()
    demo_seed(seed=8, now=NOW, customers=50, events=500)
    assert _snapshot() != first


def test_demo_data_is_consistent_and_realistic():
    summary = demo_seed(seed=3, now=NOW, customers=300, events=6000)
    assert Customer.objects.count() == summary.customers == 300
    assert Event.objects.count() == summary.events
    assert 5500 <= summary.events <= 6600
    assert summary.identified > summary.anonymous > 0
    # Every anonymous profile can be resolved by an anonymous id; identified ones have emails.
    anonymous = Customer.objects.filter(external_id__isnull=True)
    assert not anonymous.exclude(identities__kind=CustomerIdentity.Kind.ANONYMOUS).exists()
    assert not Customer.objects.filter(external_id__isnull=False, email__isnull=True).exists()

    span = Event.objects.aggregate(lo=Min("timestamp"), hi=Max("timestamp"))
    assert NOW - dt.timedelta(days=90) <= span["lo"] and span["hi"] <= NOW
    # first/last seen agree with the events of each profile.
    seen = Customer.objects.annotate(lo=Min("events__timestamp"), hi=Max("events__timestamp"), n=Count("events"))
    for c in seen:
        assert (c.first_seen_at, c.last_seen_at) == (c.lo, c.hi)
        assert c.created_at <= (c.first_seen_at or NOW)

    names = set(Event.objects.values_list("name", flat=True).distinct())
    assert {"Page Viewed", "Product Viewed", "Product Added", "Order Completed", "Email Opened"} <= names
    devices = set(Event.objects.filter(name="Page Viewed").values_list("context__device__type", flat=True))
    assert devices == {"mobile", "desktop"}
    orders = Event.objects.filter(name="Order Completed")
    assert all(Decimal(str(o.properties["revenue"])) > 0 and o.properties["products"] for o in orders)

    # The funnels the pre-built segments look for are present.
    revenue = {}
    for o in orders:
        revenue[o.customer_id] = revenue.get(o.customer_id, 0) + Decimal(str(o.properties["revenue"]))
    assert any(total >= 1000 for total in revenue.values())
    repeat = orders.values("customer").annotate(n=Count("id")).filter(n__gte=2)
    assert repeat.exists()
    assert _cart_abandoners()

    types = dict(AttributeDefinition.objects.filter(kind="custom").values_list("key", "type"))
    assert types == {
        "custom.plan": "string",
        "custom.loyalty_points": "number",
        "custom.newsletter": "boolean",
        "custom.signup_date": "date",
    }
    assert Tag.objects.filter(name="vip").get().customers.exists()
    assert set(Customer.objects.exclude(country=None).values_list("country", flat=True)) >= {"PL", "GB", "DE", "US"}


def _cart_abandoners():
    """Customers with a Product Added in the last 7 days and no later Order Completed."""
    last_order = {}
    for customer_id, at in Event.objects.filter(name="Order Completed").values_list("customer_id", "timestamp"):
        last_order[customer_id] = max(at, last_order.get(customer_id, at))
    adds = Event.objects.filter(name="Product Added", timestamp__gt=NOW - dt.timedelta(days=7))
    return {c for c, at in adds.values_list("customer_id", "timestamp") if last_order.get(c, at) <= at}


def test_command_prints_summary_and_if_empty_skips():
    out = io.StringIO()
    call_command("seed_demo", "--seed", "1", "--now", "2026-06-15T12:00:00Z", "--customers", "40", "--events", "300",
                 stdout=out)  # fmt: skip
    assert "40 customers" in out.getvalue()
    count = Event.objects.count()
    out = io.StringIO()
    call_command("seed_demo", "--if-empty", "--customers", "40", stdout=out)
    assert "already exist" in out.getvalue()
    assert Event.objects.count() == count
