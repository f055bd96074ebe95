"""Manual (static) segment members in the admin: search, add/remove, add all results, CSV upload."""

import io

from django.urls import reverse

from segmentation import services
from segmentation.models import LedgerEntry, Membership
from tests.factories import CustomerFactory


def _post(client, name, segment, body):
    return client.post(reverse(f"admin:segmentation_segment_{name}", args=[segment.pk]), body, "application/json")


def _members(segment):
    return set(Membership.objects.filter(segment=segment).values_list("customer_id", flat=True))


def test_members_page_renders_for_static_not_dynamic(staff, segment):
    response = staff.get(reverse("admin:segmentation_segment_members", args=[segment.pk]))
    assert response.status_code == 200
    assert response.context["config"]["canChange"] is True
    dynamic = services.segment_create(name="Dyn", definition={"match": "all", "conditions": []})
    assert staff.get(reverse("admin:segmentation_segment_members", args=[dynamic.pk])).status_code == 404


def test_customer_search_filters_and_keyset_pages(staff, segment):
    pl = CustomerFactory.create_batch(3, country="PL", tags=["vip"])
    CustomerFactory(country="DE", email="anna@example.org", first_name="Anna")
    services.segment_members_add(segment=segment, customer_ids=[pl[0].pk])
    url = reverse("admin:segmentation_segment_customer_search")
    data = staff.get(url, {"country": "pl", "segment": segment.pk, "page_size": 2}).json()
    assert [r["id"] for r in data["results"]] == [pl[0].pk, pl[1].pk]
    assert [r["member"] for r in data["results"]] == [True, False]
    assert data["has_next"] is True
    data = staff.get(url, {"country": "pl", "page_size": 2, "after": data["next_after"]}).json()
    assert [r["id"] for r in data["results"]] == [pl[2].pk] and data["has_next"] is False
    assert [r["email"] for r in staff.get(url, {"q": "anna"}).json()["results"]] == ["anna@example.org"]
    assert [r["email"] for r in staff.get(url, {"q": "ANNA@EXAMPLE"}).json()["results"]] == ["anna@example.org"]
    assert len(staff.get(url, {"tag": "VIP"}).json()["results"]) == 3


def test_add_and_remove_by_id_with_manual_ledger(staff, segment):
    a, b, c = CustomerFactory.create_batch(3)
    response = _post(staff, "members_add", segment, {"ids": [a.pk, b.pk, c.pk]})
    assert response.json() == {"added": 3, "unchanged": 0, "member_count": 3}
    assert _post(staff, "members_add", segment, {"ids": [a.pk]}).json()["unchanged"] == 1
    response = _post(staff, "members_remove", segment, {"ids": [b.pk]})
    assert response.json() == {"removed": 1, "unchanged": 0, "member_count": 2}
    assert _members(segment) == {a.pk, c.pk}
    reasons = set(LedgerEntry.objects.filter(segment=segment).values_list("reason", flat=True))
    assert reasons == {"manual"}
    data = staff.get(reverse("admin:segmentation_segment_members_data", args=[segment.pk])).json()
    assert [r["id"] for r in data["results"]] == [a.pk, c.pk] and data["total"] == 2


def test_add_all_results_of_a_search(staff, segment):
    pl = CustomerFactory.create_batch(4, country="PL")
    CustomerFactory.create_batch(2, country="DE")
    services.segment_members_add(segment=segment, customer_ids=[pl[0].pk])
    response = _post(staff, "members_add", segment, {"search": {"country": "PL"}})
    assert response.json()["added"] == 3
    assert _members(segment) == {c.pk for c in pl}


def test_bad_requests_are_refused(staff, segment):
    assert _post(staff, "members_add", segment, {"ids": ["x"]}).status_code == 400
    response = staff.post(
        reverse("admin:segmentation_segment_members_add", args=[segment.pk]), "{", content_type="application/json"
    )
    assert response.status_code == 400


def test_csv_upload_by_external_id_and_email_reports_unmatched(staff, segment):
    a = CustomerFactory(external_id="u-1")
    b = CustomerFactory(external_id=None, email="b@example.com")
    CustomerFactory(email="twin@example.com")
    CustomerFactory(email="twin@example.com")
    csv_text = "external_id,email\r\nu-1,\r\n,B@example.com\r\nnope,\r\n,twin@example.com\r\nu-1,\r\n"
    upload = io.BytesIO(csv_text.encode())
    upload.name = "members.csv"
    response = staff.post(reverse("admin:segmentation_segment_members_upload", args=[segment.pk]), {"file": upload})
    data = response.json()
    assert response.status_code == 200
    assert (data["matched"], data["added"], data["unmatched_count"]) == (2, 2, 2)
    assert data["unmatched"] == [
        {"row": 4, "value": "nope", "reason": "no customer with this external_id"},
        {"row": 5, "value": "twin@example.com", "reason": "several customers share this email"},
    ]
    assert _members(segment) == {a.pk, b.pk}


def test_csv_upload_single_column_without_header(staff, segment):
    a = CustomerFactory(email="solo@example.com")
    upload = io.BytesIO(b"solo@example.com\nghost@example.com\n")
    upload.name = "emails.csv"
    data = staff.post(reverse("admin:segmentation_segment_members_upload", args=[segment.pk]), {"file": upload}).json()
    assert data["added"] == 1 and data["unmatched"] == [
        {"row": 2, "value": "ghost@example.com", "reason": "no customer with this email"}
    ]
    assert _members(segment) == {a.pk}


def test_csv_upload_needs_a_known_column(staff, segment):
    upload = io.BytesIO(b"name,city\nx,y\n")
    upload.name = "bad.csv"
    response = staff.post(reverse("admin:segmentation_segment_members_upload", args=[segment.pk]), {"file": upload})
    assert response.status_code == 400 and "external_id or email" in response.json()["message"]
