"""A bulk load into a nearly empty table builds the profiles' and links' indexes after the rows."""

import io

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from customers.models import Customer, Tag
from customers.services import imports
from customers.services.imports import customer_import, indexes
from tests.factories import CustomerFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="index rebuilds are for PostgreSQL bulk loads"),
]

TABLES = [Customer._meta.db_table, Customer.tags.through._meta.db_table]
FILE = (
    "external_id,email,country,tags\r\n"
    "u1,a@example.com,PL,vip\r\n"
    'u2,b@example.com,DE,"vip, beta"\r\n'
    "u3,c@example.com,PL,\r\n"
    "u4,d@example.com,FR,beta\r\n"
)


@pytest.fixture
def bulk(settings):
    settings.TESSERA_IMPORT_INDEX_REBUILD_ROWS = 1


def run(text: str, *, dry_run=False):
    return customer_import(path_or_file=io.BytesIO(text.encode()), dry_run=dry_run)


def index_state() -> dict[str, tuple[int, str]]:
    """Every index of the two tables: name -> (oid, definition), and constraint name -> definition."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indexrelid::int, pg_get_indexdef(i.indexrelid) FROM pg_index AS i "
            "JOIN pg_class AS c ON c.oid = i.indexrelid WHERE i.indrelid = ANY(%s::regclass[]) AND i.indisvalid",
            [TABLES],
        )
        state = {name: (oid, definition) for name, oid, definition in cursor.fetchall()}
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = ANY(%s::regclass[])",
            [TABLES],
        )
        state.update({f"constraint {name}": (0, definition) for name, definition in cursor.fetchall()})
    return state


def definitions(state):
    return {name: definition for name, (_, definition) in state.items()}


def rebuilt_names(before, after) -> set[str]:
    return {name for name, (oid, _) in after.items() if oid and before[name][0] != oid}


def by_index(queryset, index: str) -> list:
    """The rows `queryset` gives when PostgreSQL must read them through `index`."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.explain()
        rows = list(queryset)
        cursor.execute("SET LOCAL enable_seqscan = on")
    assert index in plan, plan
    return rows


def test_a_bulk_load_builds_the_indexes_again_with_every_row_in_them(bulk):
    before = index_state()
    result = run(FILE)
    assert result.ok and result.created == 4
    after = index_state()
    assert definitions(after) == definitions(before)  # same names, methods, predicates, constraints
    # All but the profiles' primary key, which the events' and memberships' foreign keys rely on.
    assert rebuilt_names(before, after) == {
        "customer_email_idx",
        "customer_country_idx",
        "customer_external_id_unique",
        "customer_last_seen_idx",
        "customers_customer_created_at_b0f7c38c",
        "customers_customer_tags_pkey",
        "customer_tags_tag_customer",
    }
    u2 = Customer.objects.get(external_id="u2")
    assert by_index(Customer.objects.filter(email="b@example.com"), "customer_email_idx") == [u2]
    assert by_index(Customer.objects.filter(external_id="u2"), "customer_external_id_unique") == [u2]
    poles = by_index(Customer.objects.filter(country="PL").order_by("external_id"), "customer_country_idx")
    assert [c.external_id for c in poles] == ["u1", "u3"]
    beta = Tag.objects.get(name="beta")
    links = Customer.tags.through.objects.filter(tag_id=beta.pk).order_by("customer_id").values_list("customer_id")
    tagged = Customer.objects.filter(external_id__in=["u2", "u4"]).order_by("pk").values_list("pk", flat=True)
    assert by_index(links, "customer_tags_tag_customer") == [(pk,) for pk in tagged]
    with pytest.raises(IntegrityError, match="customer_external_id_unique"), transaction.atomic():
        Customer.objects.filter(external_id="u2").update(external_id="u1")  # the constraint holds again


@pytest.mark.parametrize("existing, least", [(2, 1), (0, 5)])
def test_routine_imports_keep_the_indexes(settings, existing, least):
    """A table holding more than a quarter of the rows an import creates, or a small import, keeps them."""
    settings.TESSERA_IMPORT_INDEX_REBUILD_ROWS = least
    CustomerFactory.create_batch(existing)
    before = index_state()
    assert run(FILE).created == 4
    assert index_state() == before


def test_duplicate_keys_of_a_bulk_load_are_reported_as_by_a_dry_run(bulk):
    data = FILE + "u2,e@example.com,GB,\r\n"
    preview = run(data, dry_run=True)
    before = index_state()
    with CaptureQueriesContext(connection) as queries:
        result = run(data)
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT INTO customers_customer (")]
    assert any(q["sql"].startswith("LOCK TABLE") for q in queries.captured_queries)
    assert len(inserts) == 1  # the file's own duplicate: not written a second time the usual way
    assert not result.ok and result.errors == preview.errors
    assert result.errors == [
        {"line": 6, "column": "external_id", "message": "Duplicate external_id “u2” (first on line 3)."}
    ]
    assert index_state() == before and not Customer.objects.exists() and not Tag.objects.exists()


def test_a_profile_created_before_the_lock_is_updated_the_usual_way(bulk, monkeypatch):
    """The rebuilt unique index refuses the file's row for a profile tracking created since the
    checks: the rebuild is undone and the row takes the ON CONFLICT path."""
    original = imports.Staging.apply
    racers = []

    def racing_apply(self, **kwargs):
        assert kwargs["rebuild_indexes"]
        racers.append(CustomerFactory(external_id="u3", city="Old"))
        return original(self, **kwargs)

    monkeypatch.setattr(imports.Staging, "apply", racing_apply)
    before = index_state()
    result = run(FILE)
    assert result.ok and Customer.objects.count() == 4
    racer = Customer.objects.get(external_id="u3")
    assert (racer.pk, racer.email, racer.country, racer.city) == (racers[0].pk, "c@example.com", "PL", "Old")
    assert index_state() == before


def test_a_table_in_use_is_written_the_usual_way(bulk, monkeypatch):
    """Another session reading the profiles holds the lock: the import does not wait for it."""
    monkeypatch.setattr(indexes, "LOCK_TIMEOUT", "100ms")
    before = index_state()
    with psycopg.connect(**connection.get_connection_params()) as reader:
        reader.execute("SELECT count(*) FROM customers_customer").fetchone()  # holds ACCESS SHARE until rollback
        result = run(FILE)
        reader.rollback()
    assert result.ok and Customer.objects.count() == 4
    assert index_state() == before
    assert sorted(Customer.objects.get(external_id="u2").tags.values_list("name", flat=True)) == ["beta", "vip"]
