"""The PostgreSQL fast path: COPY (SELECT <cells formatted in SQL>) TO STDOUT (FORMAT csv).

Every SQL formatter below mirrors customers.csvformat.format_cell for the same type; the test suite
compares both paths byte for byte. Three layers keep each expression evaluated once:
values (the ORM query shared with the Python path) -> formatted cells (OFFSET 0 stops the planner
from inlining it) -> injection escape and quoting control. Empty cells become NULL so COPY writes
them unquoted like the Python path (in a single-column file both quote them instead).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import BinaryIO

from django.db import DatabaseError, connection

from segmentation.models import Export, ExportRun

from .csvwriter import CRLF, values_queryset
from .selectors import Column

# customers.csvformat: _ESCAPE_RE and PLAIN_NUMBER_RE, anchored for PostgreSQL's regex engine.
ESCAPE_RE = "^'*[=+@\t\r-]"
PLAIN_NUMBER_RE = "^[+-]?[0-9][0-9 .]*$"
NUMERIC_RE = "^-?(0|[1-9][0-9]*)([.][0-9]+)?$"
FIRST_CHARS = ("=", "+", "-", "@", "\t", "\r", "'")


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


def _cell(col: Column, ref: str, cid: str, today: dt.date) -> tuple[str, list, bool]:
    if col.source == "tags":
        sql = (
            "(SELECT string_agg(t.name, ', ' ORDER BY t.name COLLATE \"C\") FROM customers_customer_tags ct "
            f"JOIN customers_tag t ON t.id = ct.tag_id WHERE ct.customer_id = {cid})"
        )
        return sql, [], True
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
    firsts = ", ".join(["%s"] * len(FIRST_CHARS))
    sql = f"CASE WHEN left({x}, 1) IN ({firsts}) AND {x} ~ %s AND {x} !~ %s THEN '''' || {x} ELSE {x} END"
    return sql, [*FIRST_CHARS, ESCAPE_RE, PLAIN_NUMBER_RE]


def copy_sql(*, run: ExportRun, export: Export, columns: list[Column], today: dt.date) -> tuple[str, list]:
    inner_qs = values_queryset(run=run, export=export, columns=columns).order_by()
    inner, inner_params = inner_qs.query.sql_with_params()
    single = len(columns) == 1
    mid, mid_params, outer, outer_params = [], [], [], []
    for i, col in enumerate(columns):
        sql, params, escape = _cell(col, f"v.c{i}", "v.customer_id", today)
        keep_erased = col.source == "change" or (col.source == "field" and col.key == "external_id")
        if not keep_erased:
            sql = f"CASE WHEN v.present IS NULL THEN NULL ELSE {sql} END"
        mid.append(f"{sql} AS f{i}")
        mid_params += params
        ref = f"m.f{i}"
        if escape:
            ref, params = _escape(ref)
            outer_params += params
        outer.append(f"COALESCE({ref}, '')" if single else f"NULLIF({ref}, '')")
    # Sorted once, in the middle layer (PostgreSQL does not carry an ordering up through OFFSET 0);
    # the outer layer keeps that order.
    sql = (
        f"SELECT {', '.join(outer)} FROM (SELECT v.customer_id AS cid, {', '.join(mid)} "
        f"FROM ({inner}) v ORDER BY v.customer_id OFFSET 0) m"
    )
    # Placeholders appear in text order: outer cells, middle cells, then the inner query.
    return sql, [*outer_params, *mid_params, *inner_params]


def write_copy(
    *, out: BinaryIO, run: ExportRun, export: Export, columns: list[Column], today: dt.date, on_chunk: Callable
) -> int:
    """Stream COPY output to `out`, turning each row's LF into CRLF; returns the number of rows."""
    select, params = copy_sql(run=run, export=export, columns=columns, today=today)
    delimiter = export.delimiter.replace("'", "''")
    statement = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, DELIMITER '{delimiter}', QUOTE '\"')"
    rows = 0
    buf = bytearray()
    with connection.cursor() as cursor:
        # ISO output for the ::text casts above (Django keeps the session in UTC); JIT compilation
        # costs more than it saves here. Session settings, not SET LOCAL: progress and heartbeat
        # updates during the COPY must commit on their own rather than lock the run row.
        cursor.execute("SET datestyle = 'ISO, YMD'; SET jit = off")
        try:
            with cursor.cursor.copy(statement, params) as copy:
                # One COPY data message per row, ending in LF; embedded newlines are inside quotes.
                for data in copy:
                    buf += data[:-1]
                    buf += CRLF
                    rows += 1
                    if len(buf) >= 1 << 20:
                        out.write(buf)
                        buf.clear()
                        on_chunk(rows)
        finally:
            try:
                cursor.execute("RESET datestyle; RESET jit")
            except DatabaseError:  # an aborted transaction: the COPY's own error is the one to report
                pass
    out.write(buf)
    on_chunk(rows)
    return rows
