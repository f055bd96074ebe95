"""Full recomputes: set-based diff, ledger, snapshots, versions, failures, dependencies (decisions 26–29)."""

import datetime as dt

import pytest

from customers.models import Job
from segmentation.models import LedgerEntry, Membership, Segment, Snapshot
from segmentation.services import (
    segment_create,
    segment_members_add,
    segment_recompute,
    segment_recompute_start,
    segment_request_recompute,
    segments_sweep,
    segments_watchdog,
)
from tests.factories import CustomerFactory, EventFactory

PL = {"match": "all", "conditions": [{"attribute": "country", "operator": "is", "value": "PL"}]}


def ref(key, operator="in"):
    return {"match": "all", "conditions": [{"segment": key, "operator": operator}]}


def run(segment, *, reason="scheduled", now):
    version = segment_request_recompute(segment=segment, reason=reason, enqueue=False)
    result = segment_recompute(segment_id=segment.pk, version=version, reason=reason, now=now)
    segment.refresh_from_db()
    return result


def members(segment):
    return set(Membership.objects.filter(segment=segment).values_list("customer_id", flat=True))


@pytest.fixture
def pl_segment(db):
    return segment_create(name="Poland", definition=PL)


def test_first_run_enters_matching_customers(pl_segment, now):
    pl = CustomerFactory.create_batch(2, country="PL")
    CustomerFactory(country="GB")
    CustomerFactory(country=None)
    result = run(pl_segment, reason="definition_changed", now=now)
    assert result["status"] == "applied"
    assert (result["entered"], result["exited"], result["size"]) == (2, 0, 2)
    assert members(pl_segment) == {c.pk for c in pl}
    assert pl_segment.status == Segment.Status.READY
    assert pl_segment.member_count == 2
    assert pl_segment.computed_at == now
    assert pl_segment.applied_version == pl_segment.version
    entries = LedgerEntry.objects.filter(segment=pl_segment)
    assert {(e.customer_id, e.change, e.reason) for e in entries} == {
        (c.pk, "entered", "definition_changed") for c in pl
    }
    snapshot = Snapshot.objects.get(segment=pl_segment)
    assert (snapshot.size, snapshot.entered, snapshot.exited, snapshot.reason) == (2, 2, 0, "definition_changed")
    assert all(e.snapshot_id == snapshot.pk for e in entries)
    assert Membership.objects.get(segment=pl_segment, customer=pl[0]).entered_at == now


def test_diff_applies_entries_and_exits(pl_segment, now):
    stay, leave = CustomerFactory(country="PL"), CustomerFactory(country="PL")
    run(pl_segment, now=now)
    entered_at = Membership.objects.get(segment=pl_segment, customer=stay).entered_at
    leave.country = "GB"
    leave.save()
    newcomer = CustomerFactory(country="PL")
    later = now + dt.timedelta(hours=1)
    result = run(pl_segment, reason="scheduled", now=later)
    assert (result["entered"], result["exited"], result["size"]) == (1, 1, 2)
    assert members(pl_segment) == {stay.pk, newcomer.pk}
    # A member that stays keeps its entry time.
    assert Membership.objects.get(segment=pl_segment, customer=stay).entered_at == entered_at
    last = LedgerEntry.objects.filter(segment=pl_segment, at=later)
    assert {(e.customer_id, e.change, e.reason) for e in last} == {
        (leave.pk, "exited", "scheduled"),
        (newcomer.pk, "entered", "scheduled"),
    }
    assert pl_segment.member_count == 2


def test_no_op_run_records_only_a_snapshot(pl_segment, now):
    CustomerFactory(country="PL")
    run(pl_segment, now=now)
    ledger_rows = LedgerEntry.objects.count()
    later = now + dt.timedelta(minutes=15)
    result = run(pl_segment, now=later)
    assert (result["entered"], result["exited"], result["size"]) == (0, 0, 1)
    assert LedgerEntry.objects.count() == ledger_rows
    assert Snapshot.objects.filter(segment=pl_segment).count() == 2
    latest = Snapshot.objects.filter(segment=pl_segment).first()
    assert (latest.size, latest.entered, latest.exited) == (1, 0, 0)
    assert pl_segment.computed_at == later


def test_stale_and_repeated_runs_are_skipped(pl_segment, now):
    CustomerFactory(country="PL")
    v1 = segment_request_recompute(segment=pl_segment, reason="scheduled", enqueue=False)
    v2 = segment_request_recompute(segment=pl_segment, reason="scheduled", enqueue=False)
    assert v2 == v1 + 1
    stale = segment_recompute(segment_id=pl_segment.pk, version=v1, now=now)
    assert stale["status"] == "skipped"
    assert not Snapshot.objects.filter(segment=pl_segment).exists()
    assert segment_recompute(segment_id=pl_segment.pk, version=v2, now=now)["status"] == "applied"
    again = segment_recompute(segment_id=pl_segment.pk, version=v2, now=now)
    assert again["status"] == "skipped"
    assert Snapshot.objects.filter(segment=pl_segment).count() == 1
    assert LedgerEntry.objects.filter(segment=pl_segment).count() == 1


def test_failure_marks_failed_and_keeps_last_membership(pl_segment, now):
    customer = CustomerFactory(country="PL")
    run(pl_segment, now=now)
    # A stored definition the compiler cannot read (e.g. written by an older version).
    Segment.objects.filter(pk=pl_segment.pk).update(definition={"match": "all", "conditions": [{"bogus": 1}]})
    pl_segment.refresh_from_db()
    with pytest.raises(Exception):  # noqa: B017 - whatever the engine raises
        run(pl_segment, now=now)
    pl_segment.refresh_from_db()
    assert pl_segment.status == Segment.Status.FAILED
    assert pl_segment.last_error
    assert pl_segment.retry_count == 1
    assert members(pl_segment) == {customer.pk}
    assert Snapshot.objects.filter(segment=pl_segment).count() == 1


def test_static_segments_are_not_recomputed(db, now):
    static = segment_create(name="Static", kind="static")
    assert run(static, now=now)["status"] == "skipped"


def test_dependent_waits_for_dependency_then_follows(db, now, django_capture_on_commit_callbacks):
    base = segment_create(name="Base", key="base-pl", definition=PL)
    dependent = segment_create(name="Not base", key="not-base", definition=ref("base-pl", "not_in"))
    pl, gb = CustomerFactory(country="PL"), CustomerFactory(country="GB")
    waiting = run(dependent, now=now)
    assert waiting["status"] == "skipped" and waiting["waiting"] == ["base-pl"]
    assert dependent.status == Segment.Status.PENDING
    # Computing the dependency recomputes the dependent (eager Celery runs the enqueued task).
    with django_capture_on_commit_callbacks(execute=True):
        run(base, now=now)
    dependent.refresh_from_db()
    assert dependent.status == Segment.Status.READY
    assert members(dependent) == {gb.pk}
    assert LedgerEntry.objects.get(segment=dependent).reason == "dependency"
    # Later changes of the dependency re-check only the changed customers, reason `dependency`.
    gb.country = "PL"
    gb.save()
    with django_capture_on_commit_callbacks(execute=True):
        run(base, now=now + dt.timedelta(hours=1))
    assert members(base) == {pl.pk, gb.pk}
    assert members(dependent) == set()
    exit_entry = LedgerEntry.objects.get(segment=dependent, change="exited")
    assert (exit_entry.customer_id, exit_entry.reason, exit_entry.detail) == (
        gb.pk,
        "dependency",
        {"segment": "base-pl"},
    )


def test_static_member_changes_reach_dependents(db, now, django_capture_on_commit_callbacks):
    vip = segment_create(name="VIP", key="vip-list", kind="static")
    dependent = segment_create(name="VIP or PL", key="vip-or-pl", definition=ref("vip-list"))
    customer = CustomerFactory(country="GB")
    run(dependent, now=now)
    assert members(dependent) == set()
    with django_capture_on_commit_callbacks(execute=True):
        segment_members_add(segment=vip, external_ids=[customer.external_id])
    assert members(dependent) == {customer.pk}


def test_sweeps_choose_segments_and_order_dependencies(db, now):
    Segment.objects.filter(prebuilt=True).delete()
    timed = segment_create(
        name="Recent viewers",
        definition={"match": "all", "conditions": [{"event": "Page Viewed", "within": {"last_days": 7}}]},
    )
    untimed = segment_create(name="Poland", key="pl-only", definition=PL)
    on_top = segment_create(name="Polish viewers", definition=ref("pl-only"))
    viewer = CustomerFactory(country="PL")
    EventFactory(customer=viewer, name="Page Viewed", timestamp=now - dt.timedelta(days=1))
    first = segments_sweep(scope="all", now=now)
    keys = [r["segment"] for r in first["segments"]]
    assert keys.index("pl-only") < keys.index(on_top.key)
    assert first["applied"] == 3
    assert members(timed) == members(untimed) == members(on_top) == {viewer.pk}
    # Eight days later only the time-dependent segment is swept, and the viewer has left it.
    later = now + dt.timedelta(days=8)
    second = segments_sweep(scope="time", now=later)
    assert [r["segment"] for r in second["segments"]] == [timed.key]
    assert members(timed) == set()
    assert LedgerEntry.objects.get(segment=timed, change="exited").reason == "scheduled"


def test_sweep_goes_on_after_a_failure(db, now):
    Segment.objects.filter(prebuilt=True).delete()
    broken = segment_create(name="Broken", definition=PL)
    Segment.objects.filter(pk=broken.pk).update(definition={"match": "all", "conditions": [{"bogus": 1}]})
    fine = segment_create(name="Fine", definition=PL)
    CustomerFactory(country="PL")
    result = segments_sweep(scope="all", now=now)
    statuses = {r["segment"]: r["status"] for r in result["segments"]}
    assert statuses == {broken.key: "failed", fine.key: "applied"}
    assert Segment.objects.get(pk=broken.pk).status == Segment.Status.FAILED
    # Failed segments are retried by the next time sweep.
    assert broken.key in [r["segment"] for r in segments_sweep(scope="time", now=now)["segments"]]


def test_watchdog_requeues_stuck_segments(pl_segment, now, django_capture_on_commit_callbacks):
    CustomerFactory(country="PL")
    started = now - dt.timedelta(minutes=11)
    Segment.objects.filter(pk=pl_segment.pk).update(
        status=Segment.Status.COMPUTING, computing_started_at=started, last_duration_ms=1000
    )
    recent = segment_create(name="Recent", definition=PL)
    Segment.objects.filter(pk=recent.pk).update(
        status=Segment.Status.COMPUTING, computing_started_at=now - dt.timedelta(minutes=9)
    )
    with django_capture_on_commit_callbacks(execute=True):
        requeued = segments_watchdog(now=now)
    assert requeued == [pl_segment.key]
    pl_segment.refresh_from_db()
    assert pl_segment.status == Segment.Status.READY  # the requeued run (eager) completed
    assert pl_segment.member_count == 1
    assert Segment.objects.get(pk=recent.pk).status == Segment.Status.COMPUTING


def test_on_demand_recompute_reports_through_a_job(pl_segment, marketer, django_capture_on_commit_callbacks):
    CustomerFactory(country="PL")
    with django_capture_on_commit_callbacks(execute=True):
        job = segment_recompute_start(segment=pl_segment, user=marketer)
    job.refresh_from_db()
    assert job.kind == "recompute"
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["status"] == "applied"
    assert job.result["size"] == 1
    assert job.created_by == marketer


def test_prebuilt_everyone_contains_every_profile(db, now):
    everyone = Segment.objects.get(key="everyone")
    customers = CustomerFactory.create_batch(3)
    run(everyone, now=now)
    assert members(everyone) == {c.pk for c in customers}


def test_customers_touched_after_the_run_began_are_rechecked(db, now):
    """An event newer than the run's `now` (already applied incrementally) is not undone."""
    buyers = segment_create(name="Buyers", definition={"match": "all", "conditions": [{"event": "Order Completed"}]})
    later = now + dt.timedelta(hours=1)  # still in the past of the wall clock
    seen = CustomerFactory(last_seen_at=later)
    EventFactory(customer=seen, name="Order Completed", timestamp=later)
    unseen = CustomerFactory()  # same event, but tracking never recorded the seen time
    EventFactory(customer=unseen, name="Order Completed", timestamp=later)
    run(buyers, now=now)
    assert members(buyers) == {seen.pk}
    assert LedgerEntry.objects.get(segment=buyers).customer_id == seen.pk
