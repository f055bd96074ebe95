import pytest
from django.db import connection

from customers.models import AttributeDefinition, AuditEntry, Customer, Event
from customers.services import customer_create, customer_erase, customer_update, tags_get_or_create
from customers.services.profiles import ProfileValueError
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def test_create_normalises_and_registers_custom_types():
    c = customer_create(
        external_id="u1", email=" Ann@Example.com ", country="Poland", custom={"plan": "gold", "score": "12.5"}
    )
    c.refresh_from_db()
    assert (c.email, c.country) == ("ann@example.com", "PL")
    assert c.custom == {"plan": "gold", "score": 12.5}
    types = dict(AttributeDefinition.objects.filter(kind="custom").values_list("key", "type"))
    assert types == {"custom.plan": "string", "custom.score": "number"}


def test_strict_update_reports_every_bad_value_and_writes_nothing():
    c = customer_create(external_id="u1", email="a@example.com", custom={"score": 1})
    with pytest.raises(ProfileValueError) as err:
        customer_update(customer=c, email="nope", country="Atlantis", custom={"score": "high"})
    assert set(err.value.errors) == {"email", "country"}
    c.refresh_from_db()
    assert c.email == "a@example.com"


def test_tags_are_case_insensitive_and_shared():
    a = tags_get_or_create(["VIP", "vip", " Vip "])
    assert len(a) == 1
    assert tags_get_or_create(["vip"])[0].pk == a[0].pk


def test_builtins_synced_into_registry():
    keys = set(AttributeDefinition.objects.values_list("key", flat=True))
    assert {"email", "country", "total_spent", "tags", "age"} <= keys


def test_erase_removes_profile_events_and_ids_with_anonymous_audit():
    c = customer_create(external_id="gone", email="gone@example.com")
    c.identities.create(kind="anonymous", value="anon-1")
    EventFactory.create_batch(3, customer=c)
    entry = customer_erase(customer=c)
    assert not Customer.objects.filter(external_id="gone").exists()
    assert Event.objects.count() == 0
    assert entry.details["rows"]["customers.Event"] == 3
    assert "gone" not in str(AuditEntry.objects.values().get())


def test_sqlite_and_postgres_lower_fold_unicode_alike():
    with connection.cursor() as cur:
        cur.execute("SELECT LOWER(%s)", ["ŁÓDŹ ÀÉ"])
        assert cur.fetchone()[0] == "łódź àé"
