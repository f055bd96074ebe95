import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from customers.csvformat import (
    CSV_LINE_TERMINATOR,
    csv_writer,
    escape_injection,
    format_cell,
    format_number,
    unescape_injection,
)
from customers.normalize import NUMERIC_RE, coerce, infer_type


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        (None, "string", ""),
        (None, None, ""),
        (True, "boolean", "true"),
        (False, None, "false"),
        (1.0, "number", "1"),
        (2.50, None, "2.5"),
        (Decimal("2.500"), "number", "2.5"),
        (1e20, "number", "100000000000000000000"),
        (1e-7, "number", "0.0000001"),
        (-0.0, "number", "0"),
        (-12, "number", "-12"),
        (0.1 + 0.2, "number", "0.30000000000000004"),
        (dt.date(2026, 2, 3), None, "2026-02-03"),
        ("2026-02-03", "date", "2026-02-03"),
        (dt.datetime(2026, 2, 3, 4, 5, 6, tzinfo=dt.UTC), None, "2026-02-03T04:05:06Z"),
        (dt.datetime(2026, 2, 3, 4, 5, 6, 120, tzinfo=dt.UTC), None, "2026-02-03T04:05:06.000120Z"),
        (dt.datetime(2026, 2, 3, 5, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=1))), None, "2026-02-03T04:05:06Z"),
        ("2026-02-03T04:05:06.000000Z", "datetime", "2026-02-03T04:05:06Z"),
        (["vip", "newsletter"], "list", "vip, newsletter"),
        ({"b", "A"}, "list", "A, b"),
        ("=SUM(A1)", "string", "'=SUM(A1)"),
        (["=x", "y"], "list", "'=x, y"),
        ("+48 600 100 200", "string", "+48 600 100 200"),
        ("-5", "string", "-5"),
        ("hello", None, "hello"),
    ],
)
def test_format_cell(value, type_, expected):
    assert format_cell(value, type_) == expected


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd", "'+cmd"),
        ("-cmd", "'-cmd"),
        ("@SUM", "'@SUM"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=x", "''=x"),
        ("''@x", "'''@x"),
        ("'plain", "'plain"),
        ("+48 600 100 200", "+48 600 100 200"),
        ("-1.5", "-1.5"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_escape_injection(text, escaped):
    assert escape_injection(text) == escaped
    assert unescape_injection(escaped) == text


def test_unescape_strips_one_quote_before_a_trigger_only():
    assert unescape_injection("'=x") == "=x"
    assert unescape_injection("'plain") == "'plain"
    assert unescape_injection("'") == "'"


@given(st.text())
def test_injection_round_trip(text):
    assert unescape_injection(escape_injection(text)) == text


@given(st.one_of(st.integers(min_value=-(10**15), max_value=10**15), st.floats(allow_nan=False, allow_infinity=False)))
def test_numbers_read_back_as_the_same_number(value):
    text = format_number(value)
    assert NUMERIC_RE.fullmatch(text)
    assert infer_type(text) == "number"
    assert Decimal(text) == (Decimal(repr(value)) if isinstance(value, float) else Decimal(value))
    assert coerce(text, "number") == coerce(value, "number")


def test_writer_uses_crlf_and_quotes_only_when_needed():
    buf = io.StringIO(newline="")
    writer = csv_writer(buf, delimiter=";")
    writer.writerow(["external_id", "city"])
    writer.writerow(["u1", "Kraków; PL"])
    writer.writerow(["u2", 'say "hi"'])
    assert buf.getvalue() == 'external_id;city\r\nu1;"Kraków; PL"\r\nu2;"say ""hi"""\r\n'
    assert CSV_LINE_TERMINATOR == "\r\n"
    rows = list(csv.reader(io.StringIO(buf.getvalue(), newline=""), delimiter=";"))
    assert rows[1] == ["u1", "Kraków; PL"]


def test_writer_refuses_other_delimiters():
    with pytest.raises(ValueError):
        csv_writer(io.StringIO(), delimiter="\t")
