"""Canonical CSV cells, shared by the customer import and every export (decisions 38, 39).

- datetimes: ISO 8601 in UTC with `Z` (microseconds only when not zero);
- dates: ISO `YYYY-MM-DD`; booleans: `true`/`false`;
- numbers: the shortest plain decimal form (no exponent, no trailing zeros), so they read back as
  numbers (customers.normalize.NUMERIC_RE);
- lists (tags): items joined by `, `;
- unknown (None): the empty cell;
- CRLF line endings, UTF-8, delimiter `,` by default (`;` allowed).

CSV injection (decisions 39): text starting with `=`, `+`, `-`, `@`, tab or CR is prefixed with
`'` unless it is a plain number or phone number. To keep the round trip exact for text that
already starts with quotes followed by such a character (`'=x`), any run of leading quotes
followed by a trigger character also gets one more quote; the import strips exactly one.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from decimal import Decimal

from customers.normalize import parse_date, parse_datetime, to_decimal

CSV_LINE_TERMINATOR = "\r\n"
DELIMITERS = (",", ";")
LIST_SEPARATOR = ", "

INJECTION_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Values that start with a trigger but are harmless and must stay as typed (numbers, phone numbers).
PLAIN_NUMBER_RE = re.compile(r"[+-]?[0-9][0-9 .]*")
_ESCAPE_RE = re.compile(r"'*[=+\-@\t\r]")
_UNESCAPE_RE = re.compile(r"'+[=+\-@\t\r]")


def escape_injection(text: str) -> str:
    """Prefix one `'` to text a spreadsheet would run as a formula."""
    if not text or not _ESCAPE_RE.match(text) or PLAIN_NUMBER_RE.fullmatch(text):
        return text
    return "'" + text


def unescape_injection(text: str) -> str:
    """Strip the one `'` that escape_injection added (the inverse on every string)."""
    if text[:1] == "'" and _UNESCAPE_RE.match(text):
        return text[1:]
    return text


def format_number(value) -> str:
    """The shortest plain decimal form: 1.0 -> "1", 1e-7 -> "0.0000001", Decimal("2.50") -> "2.5"."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers")
    d = value if isinstance(value, Decimal) else to_decimal(value)
    if d is None:
        raise ValueError(f"{value!r} is not a number")
    if d == d.to_integral_value():
        return str(int(d))
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def format_datetime_cell(value) -> str:
    """A datetime (aware or naive = UTC) or its stored JSON form, as ISO 8601 with `Z`."""
    parsed = parse_datetime(value)
    text = parsed.replace(tzinfo=None).isoformat()
    return text + "Z"


def format_date_cell(value) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date().isoformat()
    return parse_date(value).isoformat()


def _guess_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, list | tuple | set | frozenset):
        return "list"
    return "string"


def format_cell(value, type: str | None = None) -> str:
    """One canonical CSV cell for a value of a registry type (None: guessed from the value).

    Accepts Python values and the JSON storage forms of custom attributes (dates and datetimes
    as strings). Text is escaped against CSV injection; numbers never need it.
    """
    if value is None:
        return ""
    type_ = type or _guess_type(value)
    if type_ == "boolean":
        if isinstance(value, str):
            return value.lower()
        return "true" if value else "false"
    if type_ == "number":
        try:
            return format_number(value)
        except (TypeError, ValueError):
            return escape_injection(str(value))
    if type_ == "datetime":
        return format_datetime_cell(value)
    if type_ == "date":
        return format_date_cell(value)
    if type_ == "list":
        if isinstance(value, str):
            return escape_injection(value)
        items = sorted(value, key=str.lower) if isinstance(value, set | frozenset) else value
        return escape_injection(LIST_SEPARATOR.join(_list_item(v) for v in items))
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape_injection(str(value))


def _list_item(value) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "name"):  # Tag instances
        return value.name
    return format_cell(value)


def csv_writer(fileobj, *, delimiter: str = ","):
    """A csv.writer producing canonical files (CRLF, minimal quoting) on a text file object.

    Open the file with newline="" so the CRLF terminator is written as is.
    """
    if delimiter not in DELIMITERS:
        raise ValueError(f"delimiter must be one of {DELIMITERS}")
    return csv.writer(fileobj, delimiter=delimiter, lineterminator=CSV_LINE_TERMINATOR, quoting=csv.QUOTE_MINIMAL)
