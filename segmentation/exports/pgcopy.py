"""The PostgreSQL fast path: COPY (SELECT <cells formatted in SQL>) TO STDOUT (FORMAT csv).

Every SQL formatter below mirrors customers.csvformat.format_cell for the same type; the test suite
compares both paths byte for byte (copy_sql describes the layers; each expression is evaluated
once per row). Empty cells become NULL so COPY writes them unquoted like the Python path (in a
single-column file both quote them instead). Output is streamed in blocks, never held whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import BinaryIO

from django.db import DatabaseError, connection

from segmentation.models import Export, ExportRun, Membership

from .csvwriter import CRLF, member_rows, values_queryset
from .selectors import Column

# customers.csvformat: _ESCAPE_RE and PLAIN_NUMBER_RE, anchored for PostgreSQL's regex engine.
ESCAPE_RE = "^'*[=+@\t\r-]"
PLAIN_NUMBER_RE = "^[+-]?[0-9][0-9 .]*$"
NUMERIC_RE = "^-?(0|[1-9][0-9]*)([.][0-9]+)?$"
FIRST_CHARS = ("=", "+", "-", "@", "\t", "\r", "'")
# Rows per write: about 1 MB of typical output, and the granularity of progress reports.
CHUNK_ROWS = 8192


def _datetime(x: str) -> str:
    """ISO 8601 in UTC with Z, microseconds only when not zero (format_cell's form).

    The timestamp's own text output (DateStyle ISO, set for the COPY) is far cheaper than to_char;
    it trims trailing zeros of the fraction, so the fraction is padded back to six digits.
    """
    t = f"(({x}) AT TIME ZONE 'UTC')::text"
    return f"(rpad(replace({t}, ' ', 'T'), CASE WHEN length({t}) > 19 THEN 26 ELSE 19 END, '0') || 'Z')"


def _number(x: str) -> str:
    return f"trim_scale({x})::text"


def _json_scalar_text(v: str) -> str:
    return f"({v} #>> '{{}}')"


def _json_number(v: str) -> str:
    """A JSON number or numeric string -> shortest form; NULL otherwise."""
    t = _json_scalar_text(v)
    return (
        f"CASE WHEN jsonb_typeof({v}) = 'number' THEN {_number(t + '::numeric')} "
        f"WHEN jsonb_typeof({v}) = 'string' AND {t} ~ %s THEN {_number(t + '::numeric')} END"
    )


def _list_item(e: str) -> str:
    return (
        f"CASE jsonb_typeof({e}) WHEN 'string' THEN {e} #>> '{{}}' "
        f"WHEN 'number' THEN trim_scale(({e} #>> '{{}}')::numeric)::text "
        f"WHEN 'null' THEN '' ELSE {e} #>> '{{}}' END"
    )


def _custom_cell(v: str, type_: str) -> tuple[str, list, bool]:
    """(SQL, params, needs injection escape) for a custom attribute's jsonb value."""
    t = _json_scalar_text(v)
    if type_ == "number":
        sql = f"CASE WHEN jsonb_typeof({v}) = 'null' THEN NULL ELSE COALESCE({_json_number(v)}, {t}) END"
        return sql, [NUMERIC_RE], True
    if type_ == "boolean":
        return f"CASE WHEN jsonb_typeof({v}) = 'string' THEN lower({t}) ELSE {t} END", [], False
    if type_ == "datetime":
        return _datetime(f"({t})::timestamptz"), [], False
    if type_ == "date":
        return f"(({t})::date)::text", [], False
    if type_ == "list":
        joined = (
            f"(SELECT string_agg({_list_item('e.value')}, ', ' ORDER BY e.ordinality) "
            f"FROM jsonb_array_elements({v}) WITH ORDINALITY AS e)"
        )
        return f"CASE jsonb_typeof({v}) WHEN 'array' THEN {joined} ELSE {t} END", [], True
    return t, [], True


# customers_customer_tags aggregated per customer, only for the customers the run reads ({rows}):
# one hash or merge join instead of an index probe per row, and a nested loop for small segments.
TAGS_SQL = (
    "SELECT ct.customer_id, string_agg(t.name, ', ' ORDER BY t.name COLLATE \"C\") AS names "
    "FROM customers_customer_tags ct JOIN customers_tag t ON t.id = ct.tag_id "
    "WHERE ct.customer_id IN (SELECT r.customer_id FROM ({rows}) r) GROUP BY ct.customer_id"
)
# Code points of FIRST_CHARS: ascii() of the first character is an integer test, far cheaper per cell
# than left() and a text IN list; the regular expressions only run on the rare cells it lets through.
FIRST_CODES = ", ".join(str(ord(c)) for c in FIRST_CHARS)


def _cell(col: Column, ref: str, today: dt.date) -> tuple[str, list, bool]:
    if col.source == "tags":
        return "tg.names", [], True
    if col.source == "custom":
        return _custom_cell(ref, col.type)
    if col.key == "age":
        # 29 February counts as 1 March in other years; age() does exactly that on a fixed `today`.
        return f"date_part('year', age(%s::date, {ref}))::int::text", [today], False
    if col.type == "datetime":
        return _datetime(ref), [], False
    if col.type == "date":
        return f"({ref})::text", [], False
    if col.type == "number":
        return f"trim_scale(({ref})::numeric)::text", [], False
    return ref, [], col.source != "change"


def _escape(x: str) -> tuple[str, list]:
    sql = f"CASE WHEN ascii({x}) IN ({FIRST_CODES}) AND {x} ~ %s AND {x} !~ %s THEN '''' || {x} ELSE {x} END"
    return sql, [ESCAPE_RE, PLAIN_NUMBER_RE]


def _column_ref(sql: str) -> bool:
    """A bare column reference (`v.c3`), cheap to repeat inside the escape expression."""
    return sql.replace("_", "").replace(".", "").isalnum()


def copy_sql(
    *, run: ExportRun, export: Export, columns: list[Column], today: dt.date, direct: bool = False
) -> tuple[str, list]:
    """The COPY's SELECT and its parameters (placeholders in text order).

    `v` is the ORM values query (the run's snapshot, or with `direct` the membership itself), LEFT
    JOINed to the tags aggregated per customer when a tags column is asked for. A cell that needs
    the injection escape but is computed (custom attributes, tags) is formatted once in a middle
    layer (OFFSET 0 stops the planner from inlining it into each reference of the escape); plain
    columns and cells that never need escaping are formatted in the outer SELECT, without a layer.
    """
    inner_qs = values_queryset(run=run, export=export, columns=columns, direct=direct).order_by()
    inner, inner_params = inner_qs.query.sql_with_params()
    source, source_params = f"({inner}) v", list(inner_params)
    if any(c.source == "tags" for c in columns):
        # A superset is enough for a LEFT JOIN: the members without the mandatory filter or profile join.
        if direct:
            members = Membership.objects.filter(segment_id=export.segment_id)
        else:
            members = member_rows(run=run, export=export)
        ids_qs = members.order_by().values("customer_id")
        ids, ids_params = ids_qs.query.sql_with_params()
        source += f" LEFT JOIN ({TAGS_SQL.format(rows=ids)}) tg ON tg.customer_id = v.customer_id"
        source_params += ids_params

    def formatted(i: int, col: Column, prefix: str) -> tuple[str, list, bool]:
        sql, params, escape = _cell(col, f"{prefix}.c{i}", today)
        keep_erased = direct or col.source == "change" or (col.source == "field" and col.key == "external_id")
        if not keep_erased:
            # A snapshot row whose profile was erased since the snapshot: only external_id survives.
            sql = f"CASE WHEN {prefix}.present IS NULL THEN NULL ELSE {sql} END"
        return sql, params, escape

    def computed_escape(sql: str, escape: bool) -> bool:
        return escape and not _column_ref(sql)

    layered = any(computed_escape(*formatted(i, c, "v")[::2]) for i, c in enumerate(columns))
    prefix = "m" if layered else "v"
    single = len(columns) == 1
    mid, mid_params, outer, outer_params = [], [], [], []
    for i, col in enumerate(columns):
        sql, params, escape = formatted(i, col, "v")
        # With a middle layer, tags (joined below it) are read there too.
        if layered and (computed_escape(sql, escape) or "tg." in sql):
            mid.append(f"{sql} AS f{i}")
            mid_params += params
            sql, params = f"m.f{i}", []
        else:
            sql, params, escape = formatted(i, col, prefix)
        if escape:
            sql, escape_params = _escape(sql)
            params = params + escape_params
        outer.append(f"COALESCE({sql}, '')" if single else f"NULLIF({sql}, '')")
        outer_params += params
    if layered:
        source = f"(SELECT v.*, {', '.join(mid)} FROM {source} OFFSET 0) m"
        source_params = mid_params + source_params
    return f"SELECT {', '.join(outer)} FROM {source} ORDER BY {prefix}.customer_id", [*outer_params, *source_params]


def _write_crlf(block: bytearray, ends: list[int], out: BinaryIO) -> None:
    """Write COPY rows (concatenated in `block`, each ending in LF at `ends[i] - 1`) with CRLF endings.

    A block with exactly one LF per row has no newline inside any value, so one bytearray.replace
    converts it all; otherwise only the LF that ends each row is replaced.
    """
    if block.count(b"\n") == len(ends):
        out.write(block.replace(b"\n", CRLF))
        return
    start = 0
    for end in ends:
        out.write(block[start : end - 1])
        out.write(CRLF)
        start = end


def write_copy(
    *,
    out: BinaryIO,
    run: ExportRun,
    export: Export,
    columns: list[Column],
    today: dt.date,
    on_chunk: Callable,
    direct: bool = False,
) -> int:
    """Stream COPY output to `out` in blocks of CHUNK_ROWS rows with CRLF endings; returns the row count."""
    select, params = copy_sql(run=run, export=export, columns=columns, today=today, direct=direct)
    delimiter = export.delimiter.replace("'", "''")
    statement = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, DELIMITER '{delimiter}', QUOTE '\"')"
    rows = 0
    block, ends = bytearray(), []
    with connection.cursor() as cursor:
        # ISO output for the ::text casts above (Django keeps the session in UTC); JIT compilation
        # costs more than it saves here, and so does a parallel plan (on 2 cores: the same wall
        # time for ~20 % more CPU, taken from other work; an export is background work). Session
        # settings, not SET LOCAL: progress and heartbeat updates during the COPY must commit on
        # their own rather than lock the run row.
        cursor.execute("SET datestyle = 'ISO, YMD'; SET jit = off; SET max_parallel_workers_per_gather = 0")
        try:
            with cursor.cursor.copy(statement, params) as copy:
                # One COPY data message per row, ending in LF; embedded newlines are inside quotes.
                # Appending to one bytearray is the only per-row work (half the CPU of keeping
                # the messages and joining them).
                for data in copy:
                    block += data
                    ends.append(len(block))
                    if len(ends) == CHUNK_ROWS:
                        _write_crlf(block, ends, out)
                        rows += CHUNK_ROWS
                        block.clear()
                        ends.clear()
                        on_chunk(rows)
        finally:
            try:
                cursor.execute("RESET datestyle; RESET jit; RESET max_parallel_workers_per_gather")
            except DatabaseError:  # an aborted transaction: the COPY's own error is the one to report
                pass
    _write_crlf(block, ends, out)
    rows += len(ends)
    on_chunk(rows)
    return rows
