"""The customer tag link table has no database foreign keys (migration 0006); the ORM keeps it clean.

Every way a customer or a tag is deleted must take its links with it, and the schema must be what
the import's speed relies on: no foreign-key constraints, no single-column customer_id index.
"""

import io
import threading
import time

import pytest
from django.db import connection, transaction

from customers.models import Customer, Tag
from customers.services.identity import customer_merge
from customers.services.imports import customer_import
from customers.services.profiles import customer_erase
from customers.services.tags import customers_tag_add
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
    primary = [tuple(c["columns"]) for c in constraints.values() if c["primary_key"]]
    if connection.vendor == "postgresql":
        # The pair is the primary key; the surrogate id has no index to maintain (migration 0008).
        assert primary == [("customer_id", "tag_id")]
        assert lookups == [("tag_id", "customer_id")]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT seqcache FROM pg_sequence WHERE seqrelid = pg_get_serial_sequence(%s, 'id')::regclass",
                [Link._meta.db_table],
            )
            assert cursor.fetchone()[0] == 1000  # nothing reads link ids: sessions take them in blocks
    else:
        assert primary == [("id",)]
        assert lookups == [("customer_id", "tag_id"), ("tag_id", "customer_id")]


def test_links_still_get_ids_and_the_orm_reads_them():
    customer, tag = CustomerFactory(), TagFactory(name="vip")
    customer.tags.add(tag)
    link = Link.objects.get(customer=customer, tag=tag)
    assert link.pk is not None
    customer.tags.add(tag)  # already linked: ignored, not an error
    assert Link.objects.filter(customer=customer).count() == 1
    Link.objects.filter(pk=link.pk).delete()
    assert not customer.tags.exists()


# -- erasure racing a writer of links (PostgreSQL: SQLite runs one writer at a time) -----------------
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises writers")


def _thread(errors, fn):
    def target():
        try:
            fn()
        except Exception as exc:  # surfaced by the assertions of the test
            errors.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=target)


def _wait_until_blocked(count=1, timeout=10):
    """Until `count` other backends of this database wait for a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
        time.sleep(0.02)
    raise AssertionError("no backend ended up waiting for the lock")


def _import_tags(text):
    data = ("external_id,tags\r\n" + text + "\r\n").encode()
    result = customer_import(path_or_file=io.BytesIO(data), dry_run=False)
    assert result.ok, result.errors


def _while_erasing(customer, writer):
    """Run `writer` in a thread while another holds the erasure of `customer` uncommitted until
    the writer waits for it; returns the errors of both threads."""
    erased, release, errors = threading.Event(), threading.Event(), []

    def erase():
        with transaction.atomic():
            customer_erase(customer=Customer.objects.get(pk=customer.pk))
            erased.set()
            release.wait(10)

    eraser = _thread(errors, erase)
    eraser.start()
    assert erased.wait(10)
    other = _thread(errors, writer)
    other.start()
    _wait_until_blocked()  # the writer waits for the erasure's lock on the profile
    release.set()
    eraser.join()
    other.join()
    return errors


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_import_waiting_for_an_erasure_links_nothing_to_the_erased_profile():
    gone = CustomerFactory(external_id="gone", tags=["old"])
    CustomerFactory(external_id="kept", tags=["old"])
    assert _while_erasing(gone, lambda: _import_tags("gone,vip\r\nkept,vip")) == []
    assert not Customer.objects.filter(pk=gone.pk).exists()
    assert not Link.objects.filter(customer_id=gone.pk).exists()
    assert list(Customer.objects.get(external_id="kept").tags.values_list("name", flat=True)) == ["vip"]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_erasure_waiting_for_an_import_removes_the_links_it_wrote(monkeypatch):
    from customers.services import imports

    gone = CustomerFactory(external_id="gone", tags=["old"])
    linked, release, errors = threading.Event(), threading.Event(), []
    original = imports.Staging._replace_tags

    def replace_then_wait(self):
        original(self)
        linked.set()
        release.wait(10)  # the import's transaction stays open with its links written

    monkeypatch.setattr(imports.Staging, "_replace_tags", replace_then_wait)
    importer = _thread(errors, lambda: _import_tags("gone,vip"))
    importer.start()
    assert linked.wait(10)
    eraser = _thread(errors, lambda: customer_erase(customer=Customer.objects.get(pk=gone.pk)))
    eraser.start()
    _wait_until_blocked()  # the erasure waits for the import's lock on the profile
    release.set()
    importer.join()
    eraser.join()
    assert errors == []
    assert not Customer.objects.filter(pk=gone.pk).exists()
    assert not Link.objects.filter(customer_id=gone.pk).exists()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_bulk_tagging_waiting_for_an_erasure_links_only_profiles_still_there():
    gone, kept = CustomerFactory(external_id="gone"), CustomerFactory(external_id="kept")
    both = Customer.objects.filter(pk__in=[gone.pk, kept.pk])
    assert _while_erasing(gone, lambda: customers_tag_add(customers=both, name="vip")) == []
    assert _links() == [(kept.pk, Tag.objects.get(name="vip").pk)]
