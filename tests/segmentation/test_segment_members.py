"""Static and external segment members by id (decisions 17, 30, 31)."""

import pytest

from customers.models import CustomerIdentity
from segmentation.models import LedgerEntry, Membership, Segment
from segmentation.services import (
    SegmentConflict,
    SegmentInvalid,
    segment_create,
    segment_members_add,
    segment_members_remove,
)
from tests.factories import CustomerFactory


@pytest.fixture
def static(db):
    return segment_create(name="Hand picked", kind="static")


def test_add_by_external_id_and_public_id(static):
    a, b = CustomerFactory(external_id="crm-1"), CustomerFactory(external_id=None)
    result = segment_members_add(segment=static, external_ids=["crm-1", f"id:{b.pk}", "nobody", "CRM-1", "id:999999"])
    # External ids are exact: "CRM-1" is unknown, as are ids that match no one.
    assert result == {"added": 2, "unchanged": 0, "unknown": ["nobody", "CRM-1", "id:999999"]}
    assert set(Membership.objects.filter(segment=static).values_list("customer_id", flat=True)) == {a.pk, b.pk}
    static.refresh_from_db()
    assert static.member_count == 2
    assert static.status == Segment.Status.READY
    entries = LedgerEntry.objects.filter(segment=static)
    assert {(e.customer_id, e.change, e.reason) for e in entries} == {
        (a.pk, "entered", "api"),
        (b.pk, "entered", "api"),
    }
    snapshot = static.snapshots.get()
    assert (snapshot.size, snapshot.entered, snapshot.exited, snapshot.reason) == (2, 2, 0, "api")
    again = segment_members_add(segment=static, external_ids=["crm-1", "crm-1"], reason="manual")
    assert again == {"added": 0, "unchanged": 1, "unknown": []}
    assert static.snapshots.count() == 1  # nothing changed, nothing recorded


def test_remove(static):
    customers = CustomerFactory.create_batch(3)
    segment_members_add(segment=static, external_ids=[c.external_id for c in customers])
    result = segment_members_remove(
        segment=static, external_ids=[customers[0].external_id, "ghost", customers[0].external_id], reason="import"
    )
    assert result == {"removed": 1, "unchanged": 0, "unknown": ["ghost"]}
    outsider = CustomerFactory()
    assert segment_members_remove(segment=static, external_ids=[outsider.external_id])["unchanged"] == 1
    static.refresh_from_db()
    assert static.member_count == 2
    exit_entry = LedgerEntry.objects.get(segment=static, change="exited")
    assert (exit_entry.customer_id, exit_entry.reason) == (customers[0].pk, "import")


def test_add_by_primary_key_for_the_admin(static):
    customer = CustomerFactory()
    result = segment_members_add(segment=static, customer_ids=[customer.pk, 987654], reason="manual")
    assert result == {"added": 1, "unchanged": 0, "unknown": ["id:987654"]}


def test_aliased_previous_ids_still_resolve(db):
    external = segment_create(name="CRM list", kind="external", key="crm_list")
    customer = CustomerFactory(external_id="new-id")
    CustomerIdentity.objects.create(customer=customer, kind=CustomerIdentity.Kind.ALIAS, value="old-id")
    assert segment_members_add(segment=external, external_ids=["old-id"])["added"] == 1


def test_limits_and_kinds(static):
    with pytest.raises(SegmentInvalid):
        segment_members_add(segment=static, external_ids=[f"x{i}" for i in range(10_001)])
    with pytest.raises(SegmentInvalid):
        segment_members_add(segment=static, external_ids=[])
    with pytest.raises(SegmentInvalid):
        segment_members_add(segment=static, external_ids=[{"id": 1}])
    dynamic = segment_create(name="Rules", definition={"match": "all", "conditions": []})
    with pytest.raises(SegmentConflict):
        segment_members_add(segment=dynamic, external_ids=["a"])


def test_ten_thousand_ids_in_one_call(static):
    result = segment_members_add(segment=static, external_ids=[f"missing-{i}" for i in range(10_000)])
    assert result["added"] == 0 and len(result["unknown"]) == 10_000


def test_erasure_keeps_counts_current(static):
    from customers.services import customer_erase

    customers = CustomerFactory.create_batch(2)
    segment_members_add(segment=static, external_ids=[c.external_id for c in customers])
    customer_erase(customer=customers[0])
    static.refresh_from_db()
    assert static.member_count == 1 == Membership.objects.filter(segment=static).count()


def test_hourly_sweep_recounts_manual_segments(static):
    from segmentation.services import segments_sweep

    segment_members_add(segment=static, external_ids=[CustomerFactory().external_id])
    Segment.objects.filter(pk=static.pk).update(member_count=7)
    segments_sweep(scope="time")
    static.refresh_from_db()
    assert static.member_count == 7
    segments_sweep(scope="all")
    static.refresh_from_db()
    assert static.member_count == 1
