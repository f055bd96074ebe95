"""Delta exports: the net difference from the last successful run (decisions 40)."""

from customers.services import customer_erase
from segmentation.models import ExportedMember, ExportRun
from tests.factories import CustomerFactory

from .conftest import add_members
from .helpers import content, make_export, run_now


def rows(run):
    return content(run).decode().split("\r\n")[1:-1]


def test_first_delta_is_full_then_only_changes(members, segment):
    export = make_export(segment, columns=["external_id", "first_name"], mode="delta")
    first = run_now(export)
    assert content(first).startswith(b"external_id,first_name,change\r\n")
    assert rows(first) == ["a1,Ann,added", "b2,Bob,added", "c3,,added"]
    assert (first.rows_added, first.rows_removed) == (3, 0)

    assert rows(run_now(export)) == []  # nothing changed

    segment.memberships.filter(customer=members[0]).delete()
    add_members(segment, [CustomerFactory(external_id="d4", first_name="Dee")])
    third = run_now(export)
    assert rows(third) == ["a1,Ann,removed", "d4,Dee,added"]
    assert (third.rows_added, third.rows_removed) == (1, 1)


def test_add_then_remove_between_runs_is_no_change(members, segment):
    export = make_export(segment, columns=["external_id"], mode="delta")
    run_now(export)
    late = CustomerFactory(external_id="late")
    add_members(segment, [late])
    segment.memberships.filter(customer=late).delete()
    assert rows(run_now(export)) == []


def test_erased_customer_appears_once_as_removed_with_only_external_id(members, segment):
    export = make_export(segment, columns=["first_name", "external_id", "email", "event_count", "tags"], mode="delta")
    run_now(export)
    customer_erase(customer=members[0])
    assert rows(run_now(export)) == [",a1,,,,removed"]
    assert rows(run_now(export)) == []
    # and no trace of it is kept once the removal was delivered
    assert not ExportedMember.objects.filter(external_id="a1").exists()


def test_failed_run_is_not_a_baseline(members, segment, tmp_path):
    export = make_export(segment, columns=["external_id"], mode="delta")
    run_now(export)
    segment.memberships.filter(customer=members[2]).delete()
    from segmentation.exports.services import export_update

    export_update(export=export, destination_kind="folder", destination={"path": str(tmp_path / "missing")})
    assert run_now(export).status == ExportRun.Status.FAILED
    export_update(export=export, destination_kind="download", destination={})
    assert rows(run_now(export)) == ["c3,removed"]


def test_member_losing_mandatory_attribute_is_removed(members, segment):
    export = make_export(segment, columns=["external_id"], mandatory=["email"], mode="delta")
    assert rows(run_now(export)) == ["a1,added", "c3,added"]
    members[0].email = None
    members[0].save()
    run = run_now(export)
    assert rows(run) == ["a1,removed"]
    assert run.rows_skipped == 2


def test_delta_needs_external_id_column(segment):
    import pytest
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as err:
        make_export(segment, columns=["email"], mode="delta")
    assert "external_id" in str(err.value)


def test_delta_after_a_full_run_starts_over(members, segment):
    """Only delta runs keep a baseline: after a full run the next delta lists every member as added."""
    from segmentation.exports.services import export_update

    export = make_export(segment, columns=["external_id"], mode="delta")
    run_now(export)
    segment.memberships.filter(customer=members[0]).delete()
    export_update(export=export, mode="full")
    full = run_now(export)
    assert rows(full) == ["b2", "c3"]
    assert not ExportedMember.objects.filter(run__export=export).exists()
    export_update(export=export, mode="delta")
    again = run_now(export)
    assert rows(again) == ["b2,added", "c3,added"]
    assert (again.rows_added, again.rows_removed) == (2, 0)
    assert rows(run_now(export)) == []
