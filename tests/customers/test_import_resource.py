import datetime as dt

import pytest
import tablib

from customers.models import Customer
from customers.resources import CustomerResource
from customers.services.attributes import attribute_register
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_export_uses_canonical_cells_and_attribute_keys():
    attribute_register(key="score", type_="number")
    attribute_register(key="vip", type_="boolean")
    CustomerFactory(
        external_id="u1",
        email="a@example.com",
        first_name="=Ann",
        birth_date=dt.date(1990, 2, 3),
        custom={"score": 2.0, "vip": True},
        tags=["b", "A"],
    )
    dataset = CustomerResource().export(queryset=Customer.objects.all())
    assert dataset.headers[:3] == ["external_id", "email", "phone"]
    assert dataset.headers[-3:] == ["tags", "custom.score", "custom.vip"]
    row = dict(zip(dataset.headers, dataset[0], strict=True))
    assert row["first_name"] == "'=Ann"
    assert row["birth_date"] == "1990-02-03"
    assert row["tags"] == "A, b"
    assert (row["custom.score"], row["custom.vip"]) == ("2", "true")
    assert row["phone"] == ""


def test_import_goes_through_the_service_and_round_trips():
    attribute_register(key="score", type_="number")
    CustomerFactory(external_id="u1", first_name="=Ann", custom={"score": 2.5}, tags=["vip"])
    exported = CustomerResource().export(queryset=Customer.objects.all()).csv
    Customer.objects.all().delete()
    dataset = tablib.Dataset().load(exported, format="csv")
    preview = CustomerResource().import_data(dataset, dry_run=True)
    assert not preview.has_errors() and not preview.has_validation_errors()
    assert preview.totals["new"] == 1
    assert Customer.objects.count() == 0
    CustomerResource().import_data(dataset, dry_run=False)
    customer = Customer.objects.get()
    assert (customer.first_name, customer.custom) == ("=Ann", {"score": 2.5})
    assert [t.name for t in customer.tags.all()] == ["vip"]


def test_import_reports_row_and_file_errors():
    dataset = tablib.Dataset(["u1", "bad"], ["u2", "ok@example.com"], headers=["external_id", "email"])
    result = CustomerResource().import_data(dataset, dry_run=False)
    assert result.has_validation_errors()
    [invalid] = result.invalid_rows
    assert invalid.number == 2
    assert invalid.field_specific_errors == {"email": ["“bad” is not a valid email address."]}
    assert Customer.objects.count() == 0

    bad_header = tablib.Dataset(["x"], headers=["nonsense"])
    result = CustomerResource().import_data(bad_header, dry_run=True)
    assert result.has_errors()
    assert "not a header of attribute keys" in str(result.base_errors[0].error)


def test_surrogates_from_a_dataset_are_refused():
    dataset = tablib.Dataset(["u1", "bad \ud800"], headers=["external_id", "city"])
    result = CustomerResource().import_data(dataset, dry_run=False)
    assert result.has_errors()
    assert "not valid UTF-8" in str(result.base_errors[0].error)
    assert Customer.objects.count() == 0
