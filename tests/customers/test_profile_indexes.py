"""The email index: a hash index on PostgreSQL that equality lookups still use."""

import pytest
from django.db import connection

from customers.models import Customer
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _index_method(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT am.amname FROM pg_class AS i JOIN pg_am AS am ON am.oid = i.relam WHERE i.relname = %s", [name]
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has btree indexes only")
def test_email_index_is_a_hash_index_that_serves_email_equality():
    assert _index_method("customer_email_idx") == "hash"
    CustomerFactory.create_batch(30)
    target = CustomerFactory(email="someone@example.com")
    query = Customer.objects.filter(email="someone@example.com")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    assert "customer_email_idx" in plan
    assert list(query) == [target]


def test_email_lookup_finds_the_profile_on_every_database():
    CustomerFactory(email="a@example.com")
    b = CustomerFactory(email="b@example.com")
    assert list(Customer.objects.filter(email="b@example.com")) == [b]
