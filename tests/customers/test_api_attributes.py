import pytest

from customers.attributes import OPERATORS_BY_TYPE
from customers.models import AttributeDefinition
from customers.services import customer_create
from segmentation.models import Segment

pytestmark = pytest.mark.django_db

URL = "/api/attributes/"


def test_registry_lists_builtins_with_operators(admin_api):
    body = admin_api.get(URL, {"page_size": 1000}).json()
    by_key = {a["key"]: a for a in body["results"]}
    assert by_key["country"]["kind"] == "profile"
    assert by_key["total_spent"]["type"] == "number"
    assert by_key["total_spent"]["operators"] == OPERATORS_BY_TYPE["number"]
    assert by_key["tags"]["operators"] == OPERATORS_BY_TYPE["list"]
    system = admin_api.get(URL, {"kind": "system", "page_size": 1000}).json()["results"]
    assert {a["kind"] for a in system} == {"system"}


def test_register_custom_attribute(admin_api):
    response = admin_api.post(URL, {"key": "loyalty.tier", "type": "string", "label": "Tier"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["key"] == "custom.loyalty.tier"
    assert response.json()["kind"] == "custom"
    assert admin_api.get(f"{URL}custom.loyalty.tier/").json()["label"] == "Tier"
    again = admin_api.post(URL, {"key": "custom.loyalty.tier", "type": "number"}, format="json")
    assert again.status_code == 409


def test_register_refuses_bad_keys(admin_api):
    for key in ("has space", "a..b", "x" * 65, ""):
        response = admin_api.post(URL, {"key": key, "type": "string"}, format="json")
        assert response.status_code == 400, key
        assert response.json()["errors"][0]["field"] == "key"
    assert admin_api.post(URL, {"key": "ok", "type": "colour"}, format="json").status_code == 400


def test_patch_type_recoerces_values(admin_api):
    c = customer_create(external_id="u", custom={"score": "12"})
    assert c.custom == {"score": 12}
    response = admin_api.patch(f"{URL}custom.score/", {"type": "string", "label": "Score"}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["type"], response.json()["label"]) == ("string", "Score")
    assert AttributeDefinition.objects.get(key="custom.score").type == "string"


def test_builtins_cannot_change_or_go(admin_api):
    assert admin_api.patch(f"{URL}email/", {"label": "Mail"}, format="json").status_code == 409
    response = admin_api.delete(f"{URL}email/")
    assert response.status_code == 409 and "email" in response.json()["message"]


def test_delete_refused_while_a_definition_uses_it(admin_api):
    customer_create(external_id="u", custom={"plan": "gold", "old": 1})
    definition = {"match": "all", "conditions": [{"attribute": "custom.plan", "operator": "is", "value": "gold"}]}
    Segment.objects.create(key="gold-plan", name="Gold", definition=definition)
    Segment.objects.create(key="deps-only", name="Deps", definition={}, dependencies={"attributes": ["custom.plan"]})
    response = admin_api.delete(f"{URL}custom.plan/")
    assert response.status_code == 409
    assert "gold-plan" in response.json()["message"] and "deps-only" in response.json()["message"]
    assert admin_api.delete(f"{URL}custom.old/").status_code == 204
    assert not AttributeDefinition.objects.filter(key="custom.old").exists()
