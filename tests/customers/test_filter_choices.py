"""The admin filter choices read by index probes give what DISTINCT over every profile gives."""

import pytest

from customers.models import Customer
from customers.selectors import customer_countries, tags_with_customers
from tests.factories import CustomerFactory, TagFactory

pytestmark = pytest.mark.django_db


def test_countries_are_the_distinct_known_countries_in_order():
    for country in ["PL", "DE", "PL", None, "GB", "DE", "AD", "ZW"]:
        CustomerFactory(country=country)
    expected = sorted(set(Customer.objects.exclude(country=None).values_list("country", flat=True)))
    assert customer_countries() == expected == ["AD", "DE", "GB", "PL", "ZW"]


def test_no_profiles_no_countries():
    CustomerFactory(country=None)
    assert customer_countries() == []


def test_tags_with_customers_leaves_out_unused_tags():
    used, also_used = TagFactory(name="vip"), TagFactory(name="beta")
    TagFactory(name="unused")
    CustomerFactory().tags.add(used, also_used)
    CustomerFactory().tags.add(used)
    assert list(tags_with_customers().values_list("name", flat=True)) == ["beta", "vip"]
