import datetime as dt

import pytest
from django.utils import timezone

from customers.models import AuditEntry, Customer, CustomerIdentity, Event
from customers.services import customer_create
from segmentation.models import LedgerEntry, Membership, Segment
from tests.factories import CustomerFactory, EventFactory

pytestmark = pytest.mark.django_db

URL = "/api/customers/"


def _order(customer, revenue, days_ago=1):
    return EventFactory(
        customer=customer,
        name="Order Completed",
        properties={"revenue": revenue},
        timestamp=timezone.now() - dt.timedelta(days=days_ago),
    )


def test_list_is_page_numbered_with_system_attributes(admin_api):
    c = CustomerFactory(external_id="u1", tags=["VIP"])
    c.identities.create(kind="anonymous", value="anon-1")
    _order(c, 10.5)
    _order(c, "0.2")
    _order(c, True)  # a boolean is not a number (decisions 5)
    EventFactory(customer=c)
    CustomerFactory(external_id="u2")
    body = admin_api.get(URL).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    first = body["results"][0]
    assert first["external_id"] == "u1"
    assert first["tags"] == ["VIP"]
    assert first["anonymous_ids"] == ["anon-1"]
    assert (first["event_count"], first["orders_count"]) == (4, 3)
    assert first["total_spent"] == 10.7
    assert first["last_order_at"] is not None
    second = body["results"][1]
    assert (second["event_count"], second["orders_count"], second["total_spent"], second["last_order_at"]) == (
        0,
        0,
        0,
        None,
    )


def test_list_has_no_n_plus_one(admin_api, django_assert_max_num_queries):
    for i in range(15):
        c = CustomerFactory(tags=[f"t{i}"])
        c.identities.create(kind="anonymous", value=f"a{i}")
        EventFactory(customer=c)
    with django_assert_max_num_queries(8):
        assert len(admin_api.get(URL).json()["results"]) == 15


def test_page_size_is_clamped(admin_api):
    CustomerFactory.create_batch(3)
    body = admin_api.get(URL, {"page_size": 2}).json()
    assert len(body["results"]) == 2 and body["next"]
    assert admin_api.get(URL, {"page_size": 5000}).status_code == 200


def test_filters(admin_api):
    a = CustomerFactory(external_id="a", email="ann@example.com", country="PL", tags=["Gold"], custom={"plan": "Pro"})
    b = CustomerFactory(external_id="b", email="bob@example.com", country="DE", custom={"plan": "basic"})
    customer_create(external_id="c", custom={"plan": "pro", "score": 5, "vip": True})
    Customer.objects.filter(pk=a.pk).update(
        last_seen_at=timezone.now(), created_at=timezone.now() - dt.timedelta(days=10)
    )
    seg = Segment.objects.create(key="big-spenders", name="Big", kind="static")
    Membership.objects.create(segment=seg, customer=b, entered_at=timezone.now())

    def ids(**params):
        response = admin_api.get(URL, params)
        assert response.status_code == 200, response.json()
        return sorted(r["external_id"] for r in response.json()["results"])

    assert ids(email="ANN@example.com") == ["a"]
    assert ids(country="Germany") == ["b"]
    assert ids(country="de") == ["b"]
    assert ids(tag="gold") == ["a"]
    assert ids(segment="BIG-SPENDERS") == ["b"]
    assert ids(**{"custom.plan": "PRO"}) == ["a", "c"]
    assert ids(**{"custom.score": "5"}) == ["c"]
    assert ids(**{"custom.vip": "true"}) == ["c"]
    assert ids(last_seen_after="2000-01-01T00:00:00Z") == ["a"]
    assert ids(created_before=(timezone.now() - dt.timedelta(days=5)).isoformat()) == ["a"]


def test_bad_filters_answer_400_with_the_field(admin_api):
    for params, field in [
        ({"country": "Atlantis"}, "country"),
        ({"custom.nope": "x"}, "custom.nope"),
        ({"created_after": "yesterday"}, "created_after"),
    ]:
        response = admin_api.get(URL, params)
        assert response.status_code == 400
        body = response.json()
        assert body["errors"][0]["field"] == field and body["message"]


def test_custom_list_attribute_filter(admin_api):
    customer_create(external_id="l1", custom={"interests": ["Golf", "Łódź"]})
    customer_create(external_id="l2", custom={"interests": ["tennis", "golfing"]})
    customer_create(external_id="l3")

    def ids(value):
        return [r["external_id"] for r in admin_api.get(URL, {"custom.interests": value}).json()["results"]]

    assert ids("golf") == ["l1"]
    assert ids("ŁÓDŹ") == ["l1"]  # Unicode case folding on both databases (decisions 3)
    assert ids("TENNIS") == ["l2"]
    assert ids("chess") == []


def test_create_normalises_through_the_service(admin_api):
    response = admin_api.post(
        URL,
        {
            "external_id": "new-1",
            "email": " Ann@Example.COM ",
            "country": "Poland",
            "custom": {"plan": "gold"},
            "tags": ["a"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["email"], body["country"], body["custom"], body["tags"]) == (
        "ann@example.com",
        "PL",
        {"plan": "gold"},
        ["a"],
    )
    assert body["event_count"] == 0


def test_create_reports_every_bad_field(admin_api):
    response = admin_api.post(URL, {"email": "nope", "country": "Atlantis", "custom": {"bad key": 1}}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert {e["field"] for e in body["errors"]} == {"email", "country", "custom.bad key"}
    assert body["code"] == "invalid" and body["message"]
    assert Customer.objects.count() == 0


def test_create_refuses_nul_and_surrogates(admin_api):
    assert admin_api.post(URL, {"first_name": "a\x00b"}, format="json").status_code == 400
    response = admin_api.post(
        URL, b'{"first_name": "\\ud800", "custom": {"\\udc00": 1}}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["message"]
    response = admin_api.post(URL, b'{"custom": {"\\udc00": 1}}', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "custom.\\udc00"


def test_duplicate_external_id_is_a_conflict(admin_api):
    CustomerFactory(external_id="dup")
    response = admin_api.post(URL, {"external_id": "dup"}, format="json")
    assert response.status_code == 409
    assert "dup" in response.json()["message"]


def test_lookup_by_external_id_with_odd_characters_and_by_id(admin_api):
    odd = CustomerFactory(external_id="Ann.Smith@x y+z%")
    anonymous = CustomerFactory(external_id=None)
    assert admin_api.get(f"{URL}Ann.Smith@x%20y+z%25/").json()["id"] == odd.pk
    assert admin_api.get(f"{URL}ann.smith@x%20y+z%25/").status_code == 404  # exact, no case folding
    assert admin_api.get(f"{URL}id:{anonymous.pk}/").json()["external_id"] is None
    response = admin_api.get(f"{URL}missing/")
    assert response.status_code == 404 and "missing" in response.json()["message"]


def test_patch_merges_and_put_replaces(admin_api):
    customer_create(external_id="p1", email="a@example.com", city="Kraków", custom={"plan": "gold", "score": 3})
    response = admin_api.patch(f"{URL}p1/", {"city": "Gdańsk", "custom": {"score": None}}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["email"], body["city"], body["custom"]) == ("a@example.com", "Gdańsk", {"plan": "gold"})
    response = admin_api.put(f"{URL}p1/", {"external_id": "p1", "email": "b@example.com"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["email"], body["city"], body["custom"], body["tags"]) == ("b@example.com", None, {}, [])


def test_external_id_cannot_change(admin_api):
    CustomerFactory(external_id="fixed")
    response = admin_api.patch(f"{URL}fixed/", {"external_id": "other"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "external_id"
    assert admin_api.patch(f"{URL}fixed/", {"external_id": "fixed", "city": "x"}, format="json").status_code == 200


def test_update_with_bad_value_changes_nothing(admin_api):
    CustomerFactory(external_id="u", email="keep@example.com")
    response = admin_api.patch(f"{URL}u/", {"email": "broken", "city": "x"}, format="json")
    assert response.status_code == 400
    assert Customer.objects.get(external_id="u").email == "keep@example.com"


def test_delete_erases_everything_with_an_anonymous_audit(admin_api, admin_user):
    c = customer_create(external_id="gone@example.com", email="gone@example.com", first_name="Gone")
    c.identities.create(kind="anonymous", value="anon-gone")
    EventFactory.create_batch(2, customer=c)
    seg = Segment.objects.create(key="static-one", name="S", kind="static")
    Membership.objects.create(segment=seg, customer=c, entered_at=timezone.now())
    LedgerEntry.objects.create(segment=seg, customer=c, change="entered", at=timezone.now(), reason="api")
    response = admin_api.delete(f"{URL}gone@example.com/")
    assert response.status_code == 204
    assert not Customer.objects.exists()
    assert not Event.objects.exists()
    assert not CustomerIdentity.objects.exists()
    assert not Membership.objects.exists() and not LedgerEntry.objects.exists()
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.actor, audit.object_id) == ("customer_erased", admin_user, c.pk)
    dumped = str(AuditEntry.objects.values().get())
    assert "gone" not in dumped and "Gone" not in dumped and "anon" not in dumped
    assert admin_api.get(f"{URL}gone@example.com/").status_code == 404


def test_anonymous_profile_is_erasable_by_id(admin_api):
    c = CustomerFactory(external_id=None)
    assert admin_api.delete(f"{URL}id:{c.pk}/").status_code == 204
    assert not Customer.objects.exists()


def test_ordering_whitelist(admin_api):
    CustomerFactory(external_id="b")
    CustomerFactory(external_id="a")
    body = admin_api.get(URL, {"ordering": "-external_id"}).json()
    assert [r["external_id"] for r in body["results"]] == ["b", "a"]


def test_datetime_filters_take_any_offset_and_refuse_overflow(admin_api):
    CustomerFactory(external_id="t")
    # PostgreSQL refuses offsets beyond ±15:59 itself; the filter converts to UTC first.
    response = admin_api.get(URL, {"created_before": "5000-06-15T17:58:52+21:29"})
    assert response.status_code == 200 and response.json()["count"] == 1
    response = admin_api.get(URL, {"created_after": "9999-12-31T23:59:59-05:00"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "created_after"


def test_tag_with_a_comma_is_a_field_error(admin_api):
    response = admin_api.post(URL, {"external_id": "t", "tags": ["a,b"]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "tags"
    assert not Customer.objects.exists()


def test_custom_must_be_an_object_and_values_fit_registered_types(admin_api):
    assert admin_api.post(URL, {"custom": ["x"]}, format="json").status_code == 400
    customer_create(external_id="typed", custom={"score": 1})
    response = admin_api.patch(f"{URL}typed/", {"custom": {"score": "high"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "custom.score"


def test_custom_filters_by_registered_type(admin_api):
    customer_create(
        external_id="x",
        custom={"2024": "yes", "since": "2024-05-01", "seen": "2024-05-01T10:00:00Z", "ratio": 0.5, "ok": False},
    )
    customer_create(external_id="y", custom={"2024": "no", "ratio": 2, "ok": True})

    def ids(**params):
        response = admin_api.get(URL, params)
        assert response.status_code == 200, response.json()
        return [r["external_id"] for r in response.json()["results"]]

    assert ids(**{"custom.2024": "YES"}) == ["x"]  # a digit-only key is a key, not an array index
    assert ids(**{"custom.since": "2024-05-01"}) == ["x"]
    assert ids(**{"custom.seen": "2024-05-01T12:00:00+02:00"}) == ["x"]
    assert ids(**{"custom.ratio": "0.50"}) == ["x"]
    assert ids(**{"custom.ratio": "2"}) == ["y"]
    assert ids(**{"custom.ok": "false"}) == ["x"]
    response = admin_api.get(URL, {"custom.ratio": "lots"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "custom.ratio"
