"""Canonical CSV from a run's member set (decisions 38, 39).

Two paths produce byte-identical files:
- PostgreSQL: one `COPY (SELECT ...) TO STDOUT (FORMAT csv)` whose SELECT formats every cell in
  SQL the way customers.csvformat.format_cell does in Python (tested cell by cell and file by file);
- elsewhere (and as a fallback): the same ORM query read in keyset chunks and formatted in Python.

Quoting follows PostgreSQL's CSV rules, mirrored in `encode_row`: a cell is quoted when it holds the
delimiter, a quote, CR or LF; in a single-column file an empty cell and `\\.` are quoted too, so no
row becomes an empty line. Memory is bounded by the chunk size on both paths (rows stream to a file).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import BinaryIO

from django.db import connection
from django.db.models import Count, F, FloatField, IntegerField, Max, OuterRef, Subquery, Value
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce

from customers.csvformat import CSV_LINE_TERMINATOR, format_cell
from customers.models import Customer, Event
from segmentation.models import Export, ExportedMember, ExportRun, Membership

from .selectors import ORDER_EVENT, Column, mandatory_expression

BOM = b"\xef\xbb\xbf"
CHUNK_ROWS = 2000
CRLF = CSV_LINE_TERMINATOR.encode()


def encode_row(cells: list[str], *, delimiter: str) -> str:
    """One CSV line (with CRLF) quoted exactly as PostgreSQL's COPY ... (FORMAT csv) quotes."""
    single = len(cells) == 1
    out = []
    for cell in cells:
        if cell == "":
            out.append('""' if single else "")
        elif delimiter in cell or '"' in cell or "\n" in cell or "\r" in cell or (single and cell == "\\."):
            out.append('"' + cell.replace('"', '""') + '"')
        else:
            out.append(cell)
    return delimiter.join(out) + CSV_LINE_TERMINATOR


def _age(birth: dt.date | None, today: dt.date) -> int | None:
    """Whole years; 29 February counts as 1 March in other years (decisions 6)."""
    if birth is None:
        return None
    month_day = (birth.month, birth.day)
    if month_day == (2, 29) and not (today.year % 4 == 0 and (today.year % 100 != 0 or today.year % 400 == 0)):
        month_day = (3, 1)
    return today.year - birth.year - ((today.month, today.day) < month_day)


def _value_expression(col: Column, *, direct: bool = False):
    if col.source == "field":
        if col.key == "external_id":
            # A snapshot row keeps the external_id of a profile erased since (decisions 40).
            return F("customer__external_id") if direct else Coalesce(F("customer__external_id"), F("external_id"))
        return F(f"customer__{col.key}")
    if col.source == "custom":
        return KeyTransform(col.custom_key, "customer__custom")
    if col.source == "entered_at":
        return F("entered_at")
    if col.source == "change":
        return F("change")
    if col.key == "age":
        return F("customer__birth_date")
    if col.key in ("event_count", "orders_count"):
        events = Event.objects.filter(customer_id=OuterRef("customer_id"))
        if col.key == "orders_count":
            events = events.filter(name=ORDER_EVENT)
        counted = events.order_by().values("customer_id").annotate(n=Count("*")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))
    if col.key == "total_spent":
        # The engine's own sum (JSON number or numeric string, rounded to 6 places), 0 without orders.
        from segmentation.engine.compiler import JsonNumber, sum_expr

        orders = Event.objects.filter(customer_id=OuterRef("customer_id"), name=ORDER_EVENT).order_by()
        summed = orders.values("customer_id").annotate(s=sum_expr(JsonNumber("properties", ["revenue"], strings=True)))
        return Coalesce(Subquery(summed.values("s")), Value(0), output_field=FloatField())
    if col.key == "last_order_at":
        last = Event.objects.filter(customer_id=OuterRef("customer_id"), name=ORDER_EVENT).order_by()
        return Subquery(last.values("customer_id").annotate(t=Max("timestamp")).values("t"))
    raise ValueError(f"No value expression for {col.key}")


def member_rows(*, run: ExportRun, export: Export):
    """The run's output rows (customer_id order): included members, or a delta's changes."""
    qs = ExportedMember.objects.filter(run=run)
    if export.mode == Export.Mode.DELTA:
        return qs.exclude(change="")
    return qs.filter(included=True)


def direct_rows(*, run: ExportRun, export: Export):
    """A full run's rows read straight from the current membership (PostgreSQL COPY, one statement)."""
    qs = Membership.objects.filter(segment_id=export.segment_id)
    if export.mandatory:
        qs = qs.filter(mandatory_expression(keys=export.mandatory, now=run.started_at))
    return qs


def values_queryset(*, run: ExportRun, export: Export, columns: list[Column], direct: bool = False):
    """Raw (unformatted) values of every non-tag column, aliased c0, c1, ...; `present` marks live profiles.

    `direct` reads the segment's membership instead of the run's snapshot (full runs on PostgreSQL).
    """
    exprs = {f"c{i}": _value_expression(col, direct=direct) for i, col in enumerate(columns) if col.source != "tags"}
    rows = direct_rows(run=run, export=export) if direct else member_rows(run=run, export=export)
    return (
        rows.order_by("customer_id")
        # A non-null column of the joined profile: NULL exactly when the profile was erased
        # (customer__id would be read from the member row itself).
        .values("customer_id", present=F("customer__created_at"), **exprs)
    )


def _tags_by_customer(ids: list[int]) -> dict[int, list[str]]:
    through = Customer.tags.through
    tags = defaultdict(list)
    for cid, name in through.objects.filter(customer_id__in=ids).values_list("customer_id", "tag__name"):
        tags[cid].append(name)
    # Code point order, which PostgreSQL reproduces with COLLATE "C".
    return {cid: sorted(names) for cid, names in tags.items()}


def _erased_row(columns: list[Column], values: dict) -> list[str]:
    """An erased profile in a delta: only its external_id and `removed` (decisions 40)."""
    cells = []
    for i, col in enumerate(columns):
        keep = col.source == "change" or (col.source == "field" and col.key == "external_id")
        cells.append(format_cell(values.get(f"c{i}")) if keep else "")
    return cells


def python_rows(*, run: ExportRun, export: Export, columns: list[Column], today: dt.date) -> Iterator[list[list[str]]]:
    """Chunks of formatted rows, read with keyset pagination so memory does not grow with the segment."""
    base = values_queryset(run=run, export=export, columns=columns)
    need_tags = any(c.source == "tags" for c in columns)
    last = None
    while True:
        qs = base if last is None else base.filter(customer_id__gt=last)
        chunk = list(qs[:CHUNK_ROWS])
        if not chunk:
            return
        last = chunk[-1]["customer_id"]
        tags = _tags_by_customer([r["customer_id"] for r in chunk]) if need_tags else {}
        rows = []
        for values in chunk:
            if values["present"] is None:
                rows.append(_erased_row(columns, values))
                continue
            cells = []
            for i, col in enumerate(columns):
                if col.source == "tags":
                    cells.append(format_cell(tags.get(values["customer_id"], []), "list"))
                elif col.key == "age" and col.source == "computed":
                    cells.append(format_cell(_age(values[f"c{i}"], today), "number"))
                else:
                    cells.append(format_cell(values[f"c{i}"], col.type))
            rows.append(cells)
        yield rows


def write_python(
    *, out: BinaryIO, run: ExportRun, export: Export, columns: list[Column], today: dt.date, on_chunk: Callable
) -> int:
    written = 0
    for rows in python_rows(run=run, export=export, columns=columns, today=today):
        out.write("".join(encode_row(r, delimiter=export.delimiter) for r in rows).encode("utf-8"))
        written += len(rows)
        on_chunk(written)
    return written


def write_header(*, out: BinaryIO, export: Export, columns: list[Column]) -> None:
    if export.bom:
        out.write(BOM)
    out.write(encode_row([c.key for c in columns], delimiter=export.delimiter).encode("utf-8"))


def write_csv(
    *,
    out: BinaryIO,
    run: ExportRun,
    export: Export,
    columns: list[Column],
    today: dt.date,
    on_chunk: Callable,
    use_copy: bool | None = None,
    direct: bool = False,
) -> int:
    """Write the whole file (header and rows) to `out`; returns the number of data rows.

    `direct` (PostgreSQL only, full mode): one COPY reads the membership itself instead of the
    run's snapshot; that single statement is the run's consistent read.
    """
    if direct and (export.mode != Export.Mode.FULL or connection.vendor != "postgresql" or use_copy is False):
        raise ValueError("Only a full export on PostgreSQL can COPY straight from the membership.")
    write_header(out=out, export=export, columns=columns)
    if use_copy is None:
        use_copy = connection.vendor == "postgresql"
    if use_copy:
        from .pgcopy import write_copy

        return write_copy(
            out=out, run=run, export=export, columns=columns, today=today, on_chunk=on_chunk, direct=direct
        )
    return write_python(out=out, run=run, export=export, columns=columns, today=today, on_chunk=on_chunk)
