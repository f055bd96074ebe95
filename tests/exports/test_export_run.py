"""Running exports: columns, mandatory filtering, snapshot, empty results, the claim."""

import datetime as dt

import pytest

from customers.services import customer_erase
from segmentation.exports.selectors import export_preview_counts
from segmentation.exports.services import ExportRunActive, export_run_start
from segmentation.models import ExportedMember, ExportRun
from tests.factories import CustomerFactory

from .conftest import add_members
from .helpers import content, make_export, run_now


def test_full_export_writes_selected_columns_in_order(members, segment):
    export = make_export(segment, columns=["email", "external_id", "country", "entered_at"])
    run = run_now(export)
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    assert content(run) == (
        b"email,external_id,country,entered_at\r\n"
        b"ann@example.com,a1,PL,2026-05-01T08:30:00Z\r\n"
        b",b2,GB,2026-05-01T08:30:00Z\r\n"
        b"cy@example.com,c3,,2026-05-01T08:30:00Z\r\n"
    )
    assert run.rows_written == 3 and run.rows_skipped == 0
    assert run.job.status == "succeeded" and run.job.result["rows_written"] == 3
    assert run.filename == "vip.csv"


def test_bom_and_semicolon(members, segment):
    export = make_export(segment, columns=["external_id", "first_name"], delimiter=";", bom=True)
    data = content(run_now(export))
    assert data.startswith(b"\xef\xbb\xbfexternal_id;first_name\r\na1;Ann\r\n")


def test_mandatory_attributes_skip_members_and_preview_counts(members, segment):
    assert export_preview_counts(segment=segment, mandatory=["email", "country"]) == {
        "total": 3,
        "exported": 1,
        "sentence": "1 of 3 customers have every mandatory attribute",
    }
    export = make_export(segment, columns=["external_id"], mandatory=["email"])
    run = run_now(export)
    assert content(run) == b"external_id\r\na1\r\nc3\r\n"
    assert (run.rows_written, run.rows_skipped, run.members_total) == (2, 1, 3)


def test_tags_custom_attributes_and_escaping(segment):
    customer = CustomerFactory(
        external_id="=cmd",
        first_name="+1 555 0100",
        last_name="-sum(A1)",
        city="@home",
        tags=["zeta", "Alpha"],
        custom={
            "score": 12.5,
            "vip": True,
            "since": "2024-02-29",
            "seen": "2026-01-02T03:04:05.000000Z",
            "kids": ["a", "b"],
        },
    )
    add_members(segment, [customer])
    from customers.services.attributes import attribute_register

    for key, type_ in [
        ("score", "number"),
        ("vip", "boolean"),
        ("since", "date"),
        ("seen", "datetime"),
        ("kids", "list"),
    ]:
        attribute_register(key=key, type_=type_)
    cols = ["external_id", "first_name", "last_name", "city", "tags", "custom.score", "custom.vip", "custom.since",
            "custom.seen", "custom.kids"]  # fmt: skip
    run = run_now(make_export(segment, columns=cols))
    lines = content(run).decode().split("\r\n")
    assert (
        lines[1]
        == '\'=cmd,+1 555 0100,\'-sum(A1),\'@home,"Alpha, zeta",12.5,true,2024-02-29,2026-01-02T03:04:05Z,"a, b"'
    )


def test_empty_result_is_success_with_warning(segment):
    run = run_now(make_export(segment))
    assert run.status == ExportRun.Status.SUCCEEDED
    assert run.warning and run.rows_written == 0
    assert content(run) == b"external_id,email,first_name,country\r\n"


def test_run_now_while_active_conflicts(members, segment):
    export = make_export(segment)
    export_run_start(export=export, enqueue=False)
    with pytest.raises(ExportRunActive):
        export_run_start(export=export, enqueue=False)


def test_a_run_reads_the_membership_copied_at_start(members, segment):
    export = make_export(segment, columns=["external_id"])
    run = export_run_start(export=export, enqueue=False)
    from segmentation.exports.services import export_snapshot

    export_snapshot(run=run, export=export, now=dt.datetime.now(dt.UTC))
    add_members(segment, [CustomerFactory(external_id="late")])
    import io

    from segmentation.exports import csvwriter
    from segmentation.exports.selectors import export_columns

    out = io.BytesIO()
    csvwriter.write_csv(out=out, run=run, export=export, columns=export_columns(export=export),
                        today=dt.date.today(), on_chunk=lambda n: None)  # fmt: skip
    assert b"late" not in out.getvalue()
    assert ExportedMember.objects.filter(run=run).count() == 3


def test_erased_customers_never_appear_in_later_full_exports(members, segment):
    export = make_export(segment, columns=["external_id"])
    assert b"b2" in content(run_now(export))
    customer_erase(customer=members[1])
    assert b"b2" not in content(run_now(export))


def test_computed_system_columns(segment):
    import datetime as dt

    from tests.factories import EventFactory

    buyer, idle = (
        CustomerFactory(external_id="buyer"),
        CustomerFactory(external_id="idle", birth_date=dt.date(2000, 2, 29)),
    )
    at = dt.datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
    EventFactory(customer=buyer, name="Order Completed", properties={"revenue": 0.1}, timestamp=at)
    EventFactory(
        customer=buyer, name="Order Completed", properties={"revenue": "0.2"}, timestamp=at - dt.timedelta(days=1)
    )
    EventFactory(customer=buyer, name="Page Viewed")
    add_members(segment, [buyer, idle])
    cols = ["external_id", "event_count", "orders_count", "total_spent", "last_order_at", "age"]
    run = run_now(make_export(segment, columns=cols))
    lines = content(run).decode().split("\r\n")
    assert lines[1] == "buyer,3,2,0.3,2026-03-01T12:00:00.250000Z,"
    assert lines[2].startswith("idle,0,0,0,,")
