"""Concurrent recomputes and incremental changes on real connections (decisions 27, 48).

Threads each use their own database connection; with transactional_db the writes really
commit, so the row lock (PostgreSQL) and the write lock plus compare-and-set (SQLite) are
what keeps membership, ledger and counts consistent.
"""

import threading
from collections import defaultdict

import pytest
from django.db import connection, transaction

from customers.models import Customer
from segmentation.models import LedgerEntry, Membership, Segment
from segmentation.services import (
    segment_create,
    segment_recompute,
    segment_recompute_customers,
    segment_request_recompute,
)
from tests.factories import CustomerFactory

PL = {"match": "all", "conditions": [{"attribute": "country", "operator": "is", "value": "PL"}]}


def _thread(errors, fn):
    def target():
        try:
            fn()
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=target)


@pytest.mark.django_db(transaction=True)
def test_concurrent_recomputes_and_incremental_changes_stay_consistent():
    Segment.objects.filter(prebuilt=True).delete()
    customers = CustomerFactory.create_batch(40, country="PL")
    segment = segment_create(name="Poles", definition=PL)  # computed on commit (eager Celery)
    segment.refresh_from_db()
    assert segment.status == Segment.Status.READY
    ids = [c.pk for c in customers]
    errors: list[Exception] = []

    def recompute_loop():
        for _ in range(4):
            version = segment_request_recompute(
                segment=Segment.objects.get(pk=segment.pk), reason="scheduled", enqueue=False
            )
            segment_recompute(segment_id=segment.pk, version=version, reason="scheduled")

    def mutate_loop():
        for round_ in range(4):
            chunk = ids[round_ * 10 : round_ * 10 + 10]
            Customer.objects.filter(pk__in=chunk).update(country="GB" if round_ % 2 == 0 else "DE")
            segment_recompute_customers(customer_ids=chunk, reason="profile_change")

    threads = [_thread(errors, recompute_loop) for _ in range(3)] + [_thread(errors, mutate_loop)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    # Whatever the interleaving, the incremental runs left the state current...
    expected = set(Customer.objects.filter(country="PL").values_list("pk", flat=True))
    assert expected == set()
    assert set(Membership.objects.filter(segment=segment).values_list("customer_id", flat=True)) == expected
    segment.refresh_from_db()
    assert segment.member_count == 0
    assert segment.applied_version <= segment.version
    # ...and every customer's ledger alternates entered/exited, ending where membership ends.
    history = defaultdict(list)
    for customer_id, change in (
        LedgerEntry.objects.filter(segment=segment).order_by("id").values_list("customer_id", "change")
    ):
        history[customer_id].append(change)
    for customer_id in ids:
        changes = history[customer_id]
        assert changes == ["entered", "exited"], (customer_id, changes)


def _sweep_state():
    memberships = set(Membership.objects.values_list("segment__key", "customer_id"))
    ledger = sorted(LedgerEntry.objects.values_list("segment__key", "customer_id", "change", "reason"))
    counts = dict(Segment.objects.filter(kind="dynamic").values_list("key", "member_count"))
    return memberships, ledger, counts


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_sweep_gives_the_same_result_as_a_sequential_one(now):
    from segmentation.services import segments_recompute_many
    from segmentation.services.recompute import sweep_concurrency

    Segment.objects.filter(prebuilt=True).delete()
    CustomerFactory.create_batch(12, country="PL")
    CustomerFactory.create_batch(5, country="GB")
    defs = {
        "pl-only": PL,
        "gb-only": {"match": "all", "conditions": [{"attribute": "country", "operator": "is", "value": "GB"}]},
        "not-pl": {"match": "all", "conditions": [{"segment": "pl-only", "operator": "not_in"}]},
        "pl-again": {"match": "all", "conditions": [{"segment": "pl-only", "operator": "in"}]},
    }
    segments = [segment_create(name=key, key=key, definition=d) for key, d in defs.items()]
    results = {}
    for concurrency in (1, 2):
        Membership.objects.all().delete()
        LedgerEntry.objects.all().delete()
        Segment.objects.update(member_count=0, computed_at=None)
        summary = segments_recompute_many(segments=segments, now=now, concurrency=concurrency)
        assert summary["applied"] == 4
        keys = [r["segment"] for r in summary["segments"]]
        assert keys.index("pl-only") < keys.index("not-pl") and keys.index("pl-only") < keys.index("pl-again")
        results[concurrency] = _sweep_state()
    assert results[1] == results[2]
    assert results[2][2] == {"pl-only": 12, "gb-only": 5, "not-pl": 5, "pl-again": 12}
    # The default: parallel on PostgreSQL outside a transaction, never inside one or on SQLite.
    assert sweep_concurrency() == (2 if connection.vendor == "postgresql" else 1)
    with transaction.atomic():
        assert sweep_concurrency() == 1
