"""The PostgreSQL COPY path and the Python path write byte-identical files (decisions 38)."""

import datetime as dt
import io
import random

import pytest
from django.db import connection

from customers.services import customer_erase
from customers.services.attributes import attribute_register
from segmentation.exports import csvwriter
from segmentation.exports.selectors import export_columns
from segmentation.exports.services import export_snapshot
from segmentation.models import ExportedMember, ExportRun
from tests.factories import CustomerFactory, EventFactory

from .conftest import add_members
from .helpers import make_export, run_now

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY exists on PostgreSQL only")

ALPHABET = [
    "a",
    "Z",
    "ż",
    "漢",
    ",",
    ";",
    '"',
    "'",
    "\n",
    "\r",
    "\t",
    " ",
    "=",
    "+",
    "-",
    "@",
    "0",
    "9",
    ".",
    "\\",
    "😀",
]
NASTY = ["=1+2", "'=x", "''@y", "-5", "+48 123 456", "- 5", "\\.", '"', ",", "a\r\nb", "\t", "0.50", "-", "+", "@"]
CUSTOM_TYPES = {"n": "number", "b": "boolean", "d": "date", "t": "datetime", "l": "list", "s": "string"}
NUMBERS = [0, 1, -1, 0.1, 0.5, 12.25, 1e-7, 1e20, -0.0, 100.0, 2**60, 123456789.123456, -3.75, 1.5e300]


def _texts(rng, n):
    out = list(NASTY)
    while len(out) < n:
        out.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 8))))
    return out


def _both(run, export):
    columns = export_columns(export=export)
    today = dt.date(2028, 2, 28)
    files = []
    for use_copy in (True, False):
        out = io.BytesIO()
        csvwriter.write_csv(
            out=out, run=run, export=export, columns=columns, today=today, on_chunk=lambda n: None, use_copy=use_copy
        )
        files.append(out.getvalue())
    return files


@pytest.fixture
def rich_segment(segment):
    rng = random.Random(6)
    for key, type_ in CUSTOM_TYPES.items():
        attribute_register(key=key, type_=type_)
    texts = _texts(rng, 80)
    customers = []
    for i, text in enumerate(texts):
        custom = {}
        if i % 3:
            custom["n"] = NUMBERS[i % len(NUMBERS)]
        if i % 4 == 1:
            custom["n"] = "42.50" if i % 8 == 1 else "not a number"
        if i % 2:
            custom.update(b=bool(i % 4 == 1), d="2024-02-29", t=f"2026-01-0{i % 9 + 1}T10:11:12.{i:06d}Z")
        if i % 5:
            custom["l"] = [text, NUMBERS[i % len(NUMBERS)], None, "x,y"] if i % 5 == 1 else []
        if i % 7:
            custom["s"] = text
        c = CustomerFactory(
            external_id=f"ext-{i}" if i % 6 else None, email=None if i % 4 == 0 else f"p{i}@example.com",
            first_name=text, last_name=texts[-i - 1], city=text[::-1], phone="+48 600 000 00" + str(i % 10),
            birth_date=[None, dt.date(2000, 2, 29), dt.date(1990, 12, 31), dt.date(2010, 2, 28)][i % 4],
            first_seen_at=dt.datetime(2025, 1, 1, 0, 0, i % 60, (i * 7919) % 1000000 if i % 2 else 0, tzinfo=dt.UTC),
            custom=custom, tags=[f"t{i % 3}", texts[i % 5].replace(",", "") or "x", "Ä"] if i % 3 else [],
        )  # fmt: skip
        if i % 4 == 2:
            EventFactory(customer=c, name="Order Completed", properties={"revenue": [10, 0.1, "12.345"][i % 3]})
            EventFactory(customer=c, name="Order Completed", properties={"revenue": 0.2})
            EventFactory(customer=c)
        customers.append(c)
    add_members(segment, customers)
    return customers


ALL_COLUMNS = [
    "external_id", "email", "phone", "first_name", "last_name", "gender", "birth_date", "country", "city",
    "language", "source", "created_at", "first_seen_at", "last_seen_at", "age", "event_count", "orders_count",
    "total_spent", "last_order_at", "tags", "entered_at", "custom.n", "custom.b", "custom.d", "custom.t", "custom.l",
    "custom.s",
]  # fmt: skip


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_copy_and_python_paths_are_byte_identical(rich_segment, segment, delimiter):
    export = make_export(segment, columns=ALL_COLUMNS, delimiter=delimiter, bom=True)
    run = ExportRun.objects.create(export=export)
    export_snapshot(run=run, export=export, now=dt.datetime.now(dt.UTC))
    copy_file, python_file = _both(run, export)
    assert copy_file.count(b"\r\n") >= len(rich_segment) + 1
    for a, b in zip(copy_file.split(b"\r\n"), python_file.split(b"\r\n"), strict=False):
        assert a == b
    assert copy_file == python_file


@pytest.mark.parametrize("column", ["first_name", "custom.l", "tags", "email"])
def test_single_column_files_are_identical(rich_segment, segment, column):
    export = make_export(segment, columns=[column])
    run = ExportRun.objects.create(export=export)
    export_snapshot(run=run, export=export, now=dt.datetime.now(dt.UTC))
    copy_file, python_file = _both(run, export)
    assert copy_file == python_file


def test_delta_with_erased_customer_is_identical(rich_segment, segment):
    export = make_export(segment, columns=["external_id", "first_name", "tags"], mode="delta")
    assert run_now(export).status == "succeeded"
    customer_erase(customer=rich_segment[1])
    segment.memberships.filter(customer=rich_segment[2]).delete()
    run = ExportRun.objects.create(export=export)
    export_snapshot(run=run, export=export, now=dt.datetime.now(dt.UTC))
    copy_file, python_file = _both(run, export)
    assert copy_file == python_file
    assert copy_file.splitlines()[1:] == [b"ext-1,,,removed", b"ext-2," + copy_file.splitlines()[2].split(b",", 1)[1]]


def _direct(run, export):
    """A full run's file from the COPY that reads the membership itself (no snapshot)."""
    out = io.BytesIO()
    csvwriter.write_csv(
        out=out, run=run, export=export, columns=export_columns(export=export), today=dt.date(2028, 2, 28),
        on_chunk=lambda n: None, direct=True,
    )  # fmt: skip
    return out.getvalue()


@pytest.mark.parametrize("delimiter,bom", [(",", True), (";", False)])
@pytest.mark.parametrize("mandatory", [[], ["email", "custom.n"]])
def test_direct_copy_equals_the_snapshot_paths(rich_segment, segment, delimiter, bom, mandatory):
    export = make_export(segment, columns=ALL_COLUMNS, delimiter=delimiter, bom=bom, mandatory=mandatory)
    run = ExportRun.objects.create(export=export, started_at=dt.datetime.now(dt.UTC))
    export_snapshot(run=run, export=export, now=run.started_at)
    copy_file, python_file = _both(run, export)
    direct_file = _direct(run, export)
    assert direct_file.count(b"\r\n") > (10 if mandatory else len(rich_segment))
    assert direct_file == copy_file == python_file


@pytest.mark.parametrize("column", ["first_name", "custom.l", "custom.n", "tags", "entered_at", "age"])
def test_direct_copy_single_columns(rich_segment, segment, column):
    export = make_export(segment, columns=[column])
    run = ExportRun.objects.create(export=export)
    export_snapshot(run=run, export=export, now=dt.datetime.now(dt.UTC))
    copy_file, python_file = _both(run, export)
    assert _direct(run, export) == copy_file == python_file


def test_direct_copy_is_refused_where_it_cannot_hold(segment):
    export = make_export(segment, columns=["external_id"], mode="delta")
    run = ExportRun.objects.create(export=export)
    with pytest.raises(ValueError):
        _direct(run, export)


def test_full_runs_read_the_membership_directly(rich_segment, segment):
    """A full run on PostgreSQL writes no snapshot; its file equals the Python path's on a snapshot."""
    erased = rich_segment[3]
    customer_erase(customer=erased)
    export = make_export(segment, columns=ALL_COLUMNS, mandatory=["email"])
    run = run_now(export)
    assert run.status == "succeeded", run.error
    assert not ExportedMember.objects.filter(run=run).exists()
    probe = ExportRun.objects.create(export=export, started_at=run.started_at)
    export_snapshot(run=probe, export=export, now=run.started_at)
    _, python_file = _both(probe, export)
    # The stored file was written with the run's own date for `age`; compare the other columns.
    age = ALL_COLUMNS.index("age")
    with run.file.open("rb") as fh:
        stored = fh.read()
    assert _without_column(stored, age) == _without_column(python_file, age)
    members = len(rich_segment) - 1
    assert (run.members_total, run.rows_written) == (members, len(_without_column(stored, age)) - 1)
    assert run.rows_skipped == members - run.rows_written > 0


def _without_column(data: bytes, index: int) -> list:
    import csv

    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return [r[:index] + r[index + 1 :] for r in rows]
