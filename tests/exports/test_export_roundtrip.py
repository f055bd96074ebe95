"""A full export with every profile column re-imports through the customer CSV import unchanged."""

import datetime as dt

import pytest

from customers.models import Customer
from customers.services import customer_create
from customers.services.attributes import attribute_register
from customers.services.imports import customer_import

from .conftest import add_members
from .helpers import make_export, run_now

PROFILE = ["external_id", "email", "phone", "first_name", "last_name", "gender", "birth_date", "country", "city"]
COLUMNS = [*PROFILE, "language", "source", "tags", "custom.score", "custom.vip", "custom.since", "custom.note"]


def _snapshot():
    return [
        (
            c.external_id,
            c.email,
            c.phone,
            c.first_name,
            c.last_name,
            c.gender,
            c.birth_date,
            c.country,
            c.city,
            c.language,
            c.source,
            sorted(t.name for t in c.tags.all()),
            c.custom,
        )  # fmt: skip
        for c in Customer.objects.order_by("id")
    ]


@pytest.mark.parametrize("delimiter,bom", [(",", False), (";", True)])
def test_full_export_reimports_without_changes(segment, tmp_path, delimiter, bom):
    for key, type_ in [("score", "number"), ("vip", "boolean"), ("since", "date"), ("note", "string")]:
        attribute_register(key=key, type_=type_)
    notes = ["=HYPERLINK(1)", "'=already", "a, b; c", 'say "hi"', "two\nlines", "-", "+48 600", "@x", "plain"]
    customers = [
        customer_create(
            external_id=f"rt-{i}",
            email=f"rt{i}@example.com" if i % 3 else None,
            phone="+48 600 100 20" + str(i),
            first_name=["Zoë", "=cmd", "Anne-Marie", "O'Neil", "Łukasz"][i % 5],
            last_name=notes[i % len(notes)],
            gender=["female", "male", None][i % 3],
            birth_date=dt.date(1980 + i, 2, 28) if i % 2 else None,
            country=["PL", "GB", None][i % 3],
            city="Kraków" if i % 2 else None,
            language="pl",
            source="crm",
            tags=[f"tag{i % 3}", "VIP, gold".replace(",", "")] if i % 2 else [],
            custom={
                "score": [0.1, 12, 1e-7, 150.5, -3][i % 5],
                "vip": bool(i % 2),
                "since": "2024-02-29",
                "note": notes[(i + 3) % len(notes)],
            },
        )  # fmt: skip
        for i in range(15)
    ]
    add_members(segment, customers)
    before = _snapshot()
    export = make_export(segment, columns=COLUMNS, delimiter=delimiter, bom=bom)
    run = run_now(export)
    assert run.status == "succeeded", run.error
    result = customer_import(path_or_file=run.file.path, dry_run=False)
    assert result.ok, result.errors
    assert (result.created, result.updated, result.unchanged) == (0, 0, 15)
    assert _snapshot() == before
    again = run_now(export)
    with run.file.open("rb") as a, again.file.open("rb") as b:
        assert a.read() == b.read()
