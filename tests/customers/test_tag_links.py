"""The customer tag link table has no database foreign keys (migration 0006); the ORM keeps it clean.

Every way a customer or a tag is deleted must take its links with it, and the schema must be what
the import's speed relies on: no foreign-key constraints, no single-column customer_id index.
"""

import pytest
from django.db import connection

from customers.models import Customer, Tag
from customers.services.identity import customer_merge
from customers.services.profiles import customer_erase
from tests.factories import CustomerFactory, TagFactory

pytestmark = pytest.mark.django_db

Link = Customer.tags.through


def _links():
    return sorted(Link.objects.values_list("customer_id", "tag_id"))


def test_erasing_a_customer_removes_its_links_only():
    vip, beta = TagFactory(name="vip"), TagFactory(name="beta")
    gone, kept = CustomerFactory.create_batch(2)
    gone.tags.add(vip, beta)
    kept.tags.add(vip)
    customer_erase(customer=gone)
    assert _links() == [(kept.pk, vip.pk)]


def test_deleting_a_tag_removes_its_links_only():
    vip, beta = TagFactory(name="vip"), TagFactory(name="beta")
    ann = CustomerFactory()
    ann.tags.add(vip, beta)
    Tag.objects.filter(pk=vip.pk).delete()
    assert _links() == [(ann.pk, beta.pk)]


def test_deleting_customers_in_bulk_removes_their_links():
    vip = TagFactory(name="vip")
    customers = CustomerFactory.create_batch(3)
    for customer in customers:
        customer.tags.add(vip)
    Customer.objects.filter(pk__in=[c.pk for c in customers[:2]]).delete()
    assert _links() == [(customers[2].pk, vip.pk)]


def test_a_merge_moves_the_links_of_the_merged_profile():
    vip, beta = TagFactory(name="vip"), TagFactory(name="beta")
    survivor = CustomerFactory(external_id="s")
    merged = CustomerFactory(external_id=None)
    survivor.tags.add(vip)
    merged.tags.add(vip, beta)
    assert customer_merge(survivor_id=survivor.pk, merged_id=merged.pk)
    assert _links() == sorted([(survivor.pk, vip.pk), (survivor.pk, beta.pk)])


def test_link_table_schema_has_no_foreign_keys_and_two_lookup_indexes():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Link._meta.db_table)
    assert not [name for name, c in constraints.items() if c["foreign_key"]]
    lookups = sorted(
        tuple(c["columns"]) for c in constraints.values() if (c["index"] or c["unique"]) and not c["primary_key"]
    )
    assert lookups == [("customer_id", "tag_id"), ("tag_id", "customer_id")]
