"""segment_create / segment_update / segment_delete / segment_copy (decisions 24–26, 28, 30)."""

import pytest

from segmentation.models import LedgerEntry, Membership, Segment
from segmentation.services import (
    DefinitionProblems,
    SegmentConflict,
    SegmentInvalid,
    segment_copy,
    segment_create,
    segment_delete,
    segment_members_add,
    segment_update,
)
from tests.factories import CustomerFactory

PL = {"match": "all", "conditions": [{"attribute": "country", "operator": "is", "value": "PL"}]}


def ref(key, operator="in"):
    return {"match": "all", "conditions": [{"segment": key, "operator": operator}]}


@pytest.fixture
def no_enqueue(monkeypatch):
    """Service unit tests: record the recompute requests instead of running them."""
    calls = []
    from segmentation import tasks

    monkeypatch.setattr(tasks.segment_recompute_task, "delay", lambda *args: calls.append(args))
    return calls


def test_create_dynamic_is_pending_and_enqueues_after_commit(db, no_enqueue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        segment = segment_create(name="Polish customers", definition=PL)
    assert segment.key == "polish-customers"
    assert segment.status == Segment.Status.PENDING
    assert segment.dependencies["attributes"] == ["country"]
    assert len(callbacks) == 1
    assert no_enqueue == [(segment.pk, 1, "definition_changed", None)]
    assert Segment.objects.get(pk=segment.pk).version == 1


def test_static_and_external_are_ready(db, no_enqueue):
    static = segment_create(name="VIP list", kind="static", tags=["vip", "Q3"])
    assert static.status == Segment.Status.READY
    assert sorted(static.tags.values_list("name", flat=True)) == ["Q3", "vip"]
    external = segment_create(name="CRM audience", kind="external", key="crm:audience/42?x")
    # The CRM identifier does not fit the key rules: kept in external_ref, key from the name.
    assert external.external_ref == "crm:audience/42?x"
    assert external.key == "crm-audience"
    assert no_enqueue == []


@pytest.mark.parametrize(
    "key,message",
    [
        ("ab", "3 to 64"),
        ("x" * 65, "3 to 64"),
        ("bad/key", "3 to 64"),
        ("zażółć", "3 to 64"),
        ("Preview", "reserved"),
        ("members", "reserved"),
    ],
)
def test_key_rules(db, no_enqueue, key, message):
    with pytest.raises(SegmentInvalid) as exc:
        segment_create(name="Whatever", key=key, definition=PL)
    assert message in exc.value.errors["key"]
    assert not Segment.objects.filter(name="Whatever").exists()


def test_keys_unique_regardless_of_case_and_generated_keys_avoid_clashes(db, no_enqueue):
    segment_create(name="First", key="Big Spenders", definition=PL)
    with pytest.raises(SegmentInvalid) as exc:
        segment_create(name="Second", key="big spenders", definition=PL)
    assert "already exists" in exc.value.errors["key"]
    a = segment_create(name="Same name", definition=PL)
    b = segment_create(name="Same name", definition=PL)
    assert (a.key, b.key) == ("same-name", "same-name-2")
    assert segment_create(name="Ab", definition=PL).key == "segment-ab"


def test_invalid_definition_saves_nothing_and_reports_every_problem(db, no_enqueue):
    definition = {
        "match": "all",
        "conditions": [
            {"attribute": "no_such_attribute", "operator": "is", "value": "x"},
            {"segment": "missing-segment", "operator": "in"},
        ],
    }
    before = Segment.objects.count()
    with pytest.raises(DefinitionProblems) as exc:
        segment_create(name="Broken", definition=definition)
    pointers = {p["pointer"] for p in exc.value.problems}
    assert "/conditions/0/attribute" in pointers or "/conditions/0" in pointers
    assert any(p.startswith("/conditions/1") for p in pointers)
    assert Segment.objects.count() == before
    assert no_enqueue == []


def test_field_errors(db, no_enqueue):
    with pytest.raises(SegmentInvalid) as exc:
        segment_create(name="  ", kind="weird")
    assert set(exc.value.errors) >= {"name", "kind"}
    with pytest.raises(SegmentInvalid) as exc:
        segment_create(name="No definition")
    assert "definition" in exc.value.errors
    with pytest.raises(SegmentInvalid):
        segment_create(name="Static with rules", kind="static", definition=PL)


def test_cycles_are_refused(db, no_enqueue):
    a = segment_create(name="A seg", key="seg-a", definition=PL)
    segment_create(name="B seg", key="seg-b", definition=ref("SEG-A"))
    with pytest.raises(DefinitionProblems) as exc:
        segment_update(segment=a, definition=ref("seg-b"))
    assert exc.value.problems[0]["pointer"] == "/conditions/0/segment"
    assert "seg-a → seg-b → seg-a" in exc.value.problems[0]["message"]
    with pytest.raises(DefinitionProblems):
        segment_update(segment=a, definition=ref("seg-a"))
    a.refresh_from_db()
    assert a.definition == PL


def test_update_classifies_dependencies_and_requests_recompute(db, no_enqueue, django_capture_on_commit_callbacks):
    segment = segment_create(name="Tagged", definition=PL)
    Segment.objects.filter(pk=segment.pk).update(status=Segment.Status.READY)
    segment.refresh_from_db()
    new = {"match": "any", "conditions": [{"event": "Order Completed"}, {"segment": "everyone", "operator": "in"}]}
    with django_capture_on_commit_callbacks(execute=True):
        segment_update(segment=segment, definition=new, name="Renamed", tags=["x"])
    segment.refresh_from_db()
    assert segment.status == Segment.Status.PENDING
    assert segment.dependencies["events"] == ["Order Completed"]
    assert segment.dependencies["segments"] == ["everyone"]
    assert segment.version == 2
    assert no_enqueue[-1][1:3] == (2, "definition_changed")
    # A change without a new definition does not recompute.
    with django_capture_on_commit_callbacks(execute=True):
        segment_update(segment=segment, description="Just words")
    assert len(no_enqueue) == 1


def test_kind_is_immutable_and_prebuilt_read_only(db, no_enqueue):
    segment = segment_create(name="Dyn", definition=PL)
    with pytest.raises(SegmentInvalid) as exc:
        segment_update(segment=segment, kind="static")
    assert "kind" in exc.value.errors
    prebuilt = Segment.objects.get(key="everyone")
    assert prebuilt.prebuilt
    with pytest.raises(SegmentConflict):
        segment_update(segment=prebuilt, name="Everybody")
    with pytest.raises(SegmentConflict):
        segment_delete(segment=prebuilt)


def test_referenced_segment_cannot_be_renamed_or_deleted(db, no_enqueue):
    base = segment_create(name="Base", key="base-seg", kind="static")
    segment_create(name="User one", key="user-one", definition=ref("base-seg"))
    segment_create(name="User two", key="user-two", definition=ref("Base-Seg", "not_in"))
    with pytest.raises(SegmentConflict) as exc:
        segment_update(segment=base, key="renamed")
    assert exc.value.dependents == ["user-one", "user-two"]
    with pytest.raises(SegmentConflict) as exc:
        segment_delete(segment=base)
    assert "user-one" in exc.value.message
    # Changing only the case of the key keeps references valid.
    segment_update(segment=base, key="BASE-SEG")
    assert Segment.objects.get(pk=base.pk).key == "BASE-SEG"


def test_delete_removes_memberships(db, no_enqueue):
    segment = segment_create(name="Temp", kind="static")
    customer = CustomerFactory()
    segment_members_add(segment=segment, external_ids=[customer.external_id])
    segment_delete(segment=segment)
    assert not Segment.objects.filter(pk=segment.pk).exists()
    assert not Membership.objects.filter(customer=customer).exists()


def test_copy_prebuilt_and_static(db, no_enqueue):
    prebuilt = Segment.objects.get(key="high-value-customers")
    copy = segment_copy(segment=prebuilt, key="big-spenders", name="Big spenders")
    assert copy.prebuilt is False
    assert copy.definition == prebuilt.definition
    assert copy.status == Segment.Status.PENDING

    static = segment_create(name="Hand picked", kind="static", tags=["vip"])
    customers = CustomerFactory.create_batch(3)
    segment_members_add(segment=static, external_ids=[c.external_id for c in customers])
    twin = segment_copy(segment=static, name="Hand picked 2")
    assert twin.key == "hand-picked-2"
    assert list(twin.tags.values_list("name", flat=True)) == ["vip"]
    assert twin.member_count == 3
    assert set(Membership.objects.filter(segment=twin).values_list("customer_id", flat=True)) == {
        c.pk for c in customers
    }
    entries = LedgerEntry.objects.filter(segment=twin)
    assert entries.count() == 3
    assert {e.reason for e in entries} == {"manual"}
