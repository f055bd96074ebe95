"""Incremental re-evaluation of changed customers, and the receivers that trigger it (decisions 26–28)."""

import datetime as dt

import pytest

from customers.models import Customer
from customers.services import customer_update
from customers.signals import customers_merged, events_ingested, profile_changed
from segmentation.models import LedgerEntry, Membership, Segment
from segmentation.services import (
    incremental,
    segment_create,
    segment_recompute,
    segment_recompute_customers,
    segment_request_recompute,
)
from tests.factories import CustomerFactory, EventFactory

PL = {"match": "all", "conditions": [{"attribute": "country", "operator": "is", "value": "PL"}]}
BUYERS = {"match": "all", "conditions": [{"event": "Order Completed"}]}


def computed(name, definition, *, now, key=None):
    segment = segment_create(name=name, key=key, definition=definition)
    version = segment_request_recompute(segment=segment, reason="definition_changed", enqueue=False)
    segment_recompute(segment_id=segment.pk, version=version, reason="definition_changed", now=now)
    segment.refresh_from_db()
    return segment


def members(segment):
    return set(Membership.objects.filter(segment=segment).values_list("customer_id", flat=True))


@pytest.fixture
def clean(db):
    # Pre-built segments would also react; these tests watch their own segments only.
    Segment.objects.filter(prebuilt=True).delete()


def test_event_moves_customer_with_event_detail(clean, now):
    buyers = computed("Buyers", BUYERS, now=now)
    customer = CustomerFactory()
    bought_at = now - dt.timedelta(minutes=5)
    EventFactory(customer=customer, name="Order Completed", timestamp=bought_at)
    changed = segment_recompute_customers(
        customer_ids=[customer.pk], reason="event", event_names=["Order Completed"], now=now
    )
    assert changed == {buyers.key: 1}
    assert members(buyers) == {customer.pk}
    entry = LedgerEntry.objects.get(segment=buyers)
    assert (entry.change, entry.reason) == ("entered", "event")
    assert entry.detail == {"event": "Order Completed", "event_at": bought_at.isoformat()}
    buyers.refresh_from_db()
    assert buyers.member_count == 1
    snapshot = buyers.snapshots.order_by("-id").first()
    assert (snapshot.entered, snapshot.exited, snapshot.size, snapshot.reason) == (1, 0, 1, "event")


def test_only_segments_depending_on_the_change_are_checked(clean, now):
    by_country = computed("Poles", PL, now=now)
    buyers = computed("Buyers", BUYERS, now=now)
    customer = CustomerFactory(country="GB")
    Customer.objects.filter(pk=customer.pk).update(country="PL")  # changed without a signal
    EventFactory(customer=customer, name="Page Viewed", timestamp=now - dt.timedelta(minutes=1))
    assert segment_recompute_customers(customer_ids=[customer.pk], reason="event", event_names=["Page Viewed"]) == {}
    assert members(by_country) == set()
    # A profile change re-checks attribute segments, not event ones.
    EventFactory(customer=customer, name="Order Completed", timestamp=now - dt.timedelta(minutes=1))
    changed = segment_recompute_customers(customer_ids=[customer.pk], reason="profile_change", now=now)
    assert changed == {by_country.key: 1}
    assert members(buyers) == set()


def test_exits_and_batches(clean, now, monkeypatch):
    monkeypatch.setattr(incremental, "BATCH", 2)
    customers = CustomerFactory.create_batch(5, country="PL")
    poles = computed("Poles", PL, now=now)
    assert members(poles) == {c.pk for c in customers}
    Customer.objects.filter(pk__in=[c.pk for c in customers[1:4]]).update(country="DE")
    changed = segment_recompute_customers(customer_ids=[c.pk for c in customers], reason="import", now=now)
    assert changed == {poles.key: 3}
    assert members(poles) == {customers[0].pk, customers[4].pk}
    exits = LedgerEntry.objects.filter(segment=poles, change="exited")
    assert {e.customer_id for e in exits} == {c.pk for c in customers[1:4]}
    assert {e.reason for e in exits} == {"import"}
    poles.refresh_from_db()
    assert poles.member_count == 2


def test_never_computed_segments_wait_for_their_full_run(clean, now):
    pending = segment_create(name="Poles", definition=PL)
    customer = CustomerFactory(country="PL")
    assert segment_recompute_customers(customer_ids=[customer.pk], reason="profile_change", now=now) == {}
    assert members(pending) == set()


def test_changes_cascade_to_dependents(clean, now):
    computed("Poles", PL, now=now, key="poles")
    dependent = computed(
        "Poles again", {"match": "all", "conditions": [{"segment": "poles", "operator": "in"}]}, now=now
    )
    customer = CustomerFactory(country="PL")
    changed = segment_recompute_customers(customer_ids=[customer.pk], reason="profile_change", now=now)
    assert changed == {"poles": 1, dependent.key: 1}
    entry = LedgerEntry.objects.get(segment=dependent)
    assert (entry.reason, entry.detail) == ("dependency", {"segment": "poles"})


def test_events_ingested_signal_enqueues_after_commit(clean, now, django_capture_on_commit_callbacks):
    buyers = computed("Buyers", BUYERS, now=now)
    customer = CustomerFactory()
    EventFactory(customer=customer, name="Order Completed", timestamp=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        events_ingested.send(sender=None, customer_ids=[customer.pk], event_names=["Order Completed"])
    assert len(callbacks) == 1 and members(buyers) == set()  # nothing before commit
    callbacks[0]()  # commit: the (eager) task runs
    assert members(buyers) == {customer.pk}
    assert LedgerEntry.objects.get(segment=buyers).reason == "event"


def test_profile_changes_through_services_update_segments(clean, now, django_capture_on_commit_callbacks):
    poles = computed("Poles", PL, now=now)
    customer = CustomerFactory(country="GB")
    with django_capture_on_commit_callbacks(execute=True):
        customer_update(customer=customer, country="PL")
    assert members(poles) == {customer.pk}
    assert LedgerEntry.objects.get(segment=poles).reason == "profile_change"
    with django_capture_on_commit_callbacks(execute=True):
        profile_changed.send(sender=Customer, customer_ids=[customer.pk], reason="import")
    assert LedgerEntry.objects.filter(segment=poles).count() == 1  # nothing changed, nothing written


def test_merge_rechecks_the_survivor_everywhere(clean, now, django_capture_on_commit_callbacks):
    poles = computed("Poles", PL, now=now)
    buyers = computed("Buyers", BUYERS, now=now)
    survivor = CustomerFactory(country="PL")
    EventFactory(customer=survivor, name="Order Completed", timestamp=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        customers_merged.send(sender=Customer, survivor_id=survivor.pk, merged_id=survivor.pk + 1000)
    assert members(poles) == members(buyers) == {survivor.pk}
    assert set(LedgerEntry.objects.values_list("reason", flat=True)) == {"merged"}
