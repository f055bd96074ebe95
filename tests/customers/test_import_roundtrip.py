"""A canonical file written with customers.csvformat imports and writes back byte for byte."""

import datetime as dt
import io
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.csvformat import csv_writer, format_cell
from customers.models import Customer
from customers.normalize import coerce
from customers.services.attributes import attribute_register
from customers.services.imports import customer_import

pytestmark = pytest.mark.django_db

COLUMNS = [
    ("external_id", "string"),
    ("email", "string"),
    ("first_name", "string"),
    ("birth_date", "date"),
    ("country", "string"),
    ("tags", "list"),
    ("custom.score", "number"),
    ("custom.vip", "boolean"),
    ("custom.signup", "date"),
    ("custom.last_login", "datetime"),
    ("custom.note", "string"),
    ("custom.items", "list"),
]


def write(rows, delimiter=","):
    buf = io.StringIO(newline="")
    writer = csv_writer(buf, delimiter=delimiter)
    writer.writerow([name for name, _ in COLUMNS])
    for row in rows:
        writer.writerow([format_cell(value, type_) for value, (_, type_) in zip(row, COLUMNS, strict=True)])
    return buf.getvalue().encode()


def export():
    rows = []
    for c in Customer.objects.order_by("external_id").prefetch_related("tags"):
        tags = sorted((t.name for t in c.tags.all()), key=str.lower)
        values = [c.external_id, c.email, c.first_name, c.birth_date, c.country, tags]
        values += [c.custom.get(name[len("custom.") :]) for name, _ in COLUMNS[6:]]
        rows.append(values)
    return rows


def register_types():
    for name, type_ in COLUMNS[6:]:
        attribute_register(key=name[len("custom.") :], type_=type_)


ROWS = [
    [
        "u1",
        "ann@example.com",
        "=Ann",
        dt.date(1990, 2, 3),
        "PL",
        ["new", "VIP"],
        2.5,
        True,
        "2026-01-02",
        "2026-01-02T03:04:05.000000Z",
        "+cmd",
        ["a", "b"],
    ],
    ["u2", None, "Bob", None, None, [], -3, False, None, "2026-05-06T07:08:09.123456Z", "-5", None],
]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_canonical_file_round_trips_byte_for_byte(delimiter):
    register_types()
    data = write(ROWS, delimiter)
    result = customer_import(path_or_file=io.BytesIO(data), dry_run=False)
    assert result.ok, result.errors
    assert result.created == 2
    assert Customer.objects.get(external_id="u1").first_name == "=Ann"
    assert write(export(), delimiter) == data
    again = customer_import(path_or_file=io.BytesIO(data), dry_run=False)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_types_inferred_from_a_canonical_file_match_the_writer():
    data = write(ROWS)
    result = customer_import(path_or_file=io.BytesIO(data), dry_run=False)
    assert result.ok, result.errors
    # A list cell reads back as text when the column is new: lists are never inferred from CSV.
    assert result.new_attributes == {
        "items": "string",
        "last_login": "datetime",
        "note": "string",
        "score": "number",
        "signup": "date",
        "vip": "boolean",
    }


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00,"), max_size=12)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(note=text, score=st.one_of(st.none(), st.integers(-(10**9), 10**9), st.floats(-1e6, 1e6)))
def test_any_text_and_number_round_trip(note, score):
    register_types()
    Customer.objects.all().delete()
    row = ["u1", None, None, None, None, [], score, None, None, None, note, None]
    data = write([row])
    result = customer_import(path_or_file=io.BytesIO(data), dry_run=False)
    assert result.ok, result.errors
    custom = Customer.objects.get().custom
    assert custom.get("note") == (unicodedata.normalize("NFC", note).strip() or None)
    assert custom.get("score") == coerce(score, "number")
