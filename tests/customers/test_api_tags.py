import pytest

from customers.models import Customer, Tag
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

URL = "/api/tags/"


def test_crud(admin_api):
    response = admin_api.post(URL, {"name": "  Łódź VIP "}, format="json")
    assert response.status_code == 201, response.json()
    tag_id = response.json()["id"]
    assert response.json()["name"] == "Łódź VIP"
    assert admin_api.get(URL).json()["count"] == 1
    assert admin_api.patch(f"{URL}{tag_id}/", {"name": "Gold"}, format="json").json()["name"] == "Gold"
    assert admin_api.get(URL, {"search": "OL"}).json()["count"] == 1
    assert admin_api.delete(f"{URL}{tag_id}/").status_code == 204
    assert not Tag.objects.exists()


def test_names_unique_ignoring_case_and_without_commas(admin_api):
    admin_api.post(URL, {"name": "łódź"}, format="json")
    for name in ("ŁÓDŹ", "a,b", "   ", "x\x00"):
        response = admin_api.post(URL, {"name": name}, format="json")
        assert response.status_code == 400, name
        assert response.json()["errors"][0]["field"] == "name"
        assert response.json()["message"]


def test_rename_and_delete_touch_tagged_customers(admin_api):
    c = CustomerFactory(tags=["old"])
    before = Customer.objects.get(pk=c.pk).updated_at
    tag = Tag.objects.get(name="old")
    admin_api.patch(f"{URL}{tag.pk}/", {"name": "new"}, format="json")
    renamed = Customer.objects.get(pk=c.pk)
    assert renamed.updated_at > before
    assert [t.name for t in renamed.tags.all()] == ["new"]
    admin_api.delete(f"{URL}{tag.pk}/")
    assert not Customer.objects.get(pk=c.pk).tags.exists()
