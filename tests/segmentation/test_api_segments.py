"""REST API for segments (rest-api.md; decisions 9, 24, 30–34)."""

import pytest

from segmentation.models import LedgerEntry, Membership, Segment
from segmentation.services import segment_create, segment_members_add, segment_recompute, segment_request_recompute
from tests.factories import CustomerFactory

PL = {"match": "all", "conditions": [{"attribute": "country", "operator": "is", "value": "PL"}]}


def ref(key):
    return {"match": "all", "conditions": [{"segment": key, "operator": "in"}]}


def compute(segment):
    version = segment_request_recompute(segment=segment, reason="definition_changed", enqueue=False)
    segment_recompute(segment_id=segment.pk, version=version, reason="definition_changed")


@pytest.fixture
def poles(db):
    return segment_create(name="Poles", key="poles", definition=PL, tags=["geo"])


def test_permissions(nobody_api, analyst_api, marketer_api, poles):
    assert nobody_api.get("/api/segments/").status_code == 403
    assert nobody_api.post("/api/segments/preview/", {"definition": PL}, format="json").status_code == 403
    assert analyst_api.get("/api/segments/").status_code == 200
    assert analyst_api.get("/api/segments/poles/").status_code == 200
    assert analyst_api.get("/api/segments/poles/members/").status_code == 200
    assert analyst_api.get("/api/segments/poles/history/").status_code == 200
    assert analyst_api.post("/api/segments/preview/", {"definition": PL}, format="json").status_code == 200
    new = {"name": "Analysts may not", "definition": PL}
    assert analyst_api.post("/api/segments/", new, format="json").status_code == 403
    assert analyst_api.patch("/api/segments/poles/", {"name": "x"}, format="json").status_code == 403
    assert analyst_api.delete("/api/segments/poles/").status_code == 403
    assert analyst_api.post("/api/segments/poles/recompute/").status_code == 403
    assert analyst_api.post("/api/segments/poles/copy/", {"name": "Mine"}, format="json").status_code == 403
    assert marketer_api.post("/api/segments/", new, format="json").status_code == 201


def test_create_answers_pending_with_summary(marketer_api, marketer):
    response = marketer_api.post(
        "/api/segments/", {"name": "Polish VIPs", "definition": PL, "tags": ["vip"]}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["key"] == "polish-vips"
    assert body["status"] == "pending"
    assert body["kind"] == "dynamic"
    assert body["tags"] == ["vip"]
    assert body["owner"] == "marketer"
    assert body["prebuilt"] is False
    assert body["summary"]
    assert response["Location"] == "/api/segments/polish-vips/"
    assert set(body) >= {"member_count", "computed_at", "external_ref", "created_at", "updated_at", "definition"}


def test_invalid_definition_is_400_with_pointers_and_nothing_saved(marketer_api):
    before = Segment.objects.count()
    definition = {"match": "all", "conditions": [{"attribute": "nope", "operator": "is", "value": 1}]}
    response = marketer_api.post("/api/segments/", {"name": "Bad", "definition": definition}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_definition"
    assert body["errors"] and all("pointer" in e for e in body["errors"])
    assert body["errors"][0]["pointer"].startswith("/conditions/0")
    assert Segment.objects.count() == before


def test_key_errors_name_the_field(marketer_api, poles):
    response = marketer_api.post("/api/segments/", {"name": "Again", "key": "POLES", "definition": PL}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "key"
    response = marketer_api.post("/api/segments/", {"name": "Res", "key": "preview", "definition": PL}, format="json")
    assert response.status_code == 400


def test_list_filters(analyst_api, poles):
    segment_create(name="Hand picked", kind="static", tags=["GEO"])
    segment_create(name="Pushed", kind="external", key="crm-7")
    keys = lambda params: [s["key"] for s in analyst_api.get("/api/segments/", params).json()["results"]]  # noqa: E731
    assert keys({"kind": "static"}) == ["hand-picked"]
    assert keys({"tag": "geo"}) == ["hand-picked", "poles"]
    assert keys({"search": "push"}) == ["crm-7"]
    listing = analyst_api.get("/api/segments/", {"page_size": 1}).json()
    assert listing["count"] >= 3 and len(listing["results"]) == 1


def test_keys_with_spaces_and_any_case(analyst_api, db):
    segment_create(name="Spaced", key="Big Spenders 2026", definition=PL)
    response = analyst_api.get("/api/segments/big%20spenders%202026/")
    assert response.status_code == 200
    assert response.json()["key"] == "Big Spenders 2026"
    assert analyst_api.get("/api/segments/nope/").status_code == 404


def test_update_and_delete_rules(marketer_api, poles):
    response = marketer_api.patch(
        "/api/segments/poles/",
        {"definition": {"match": "all", "conditions": [{"attribute": "country", "operator": "is", "value": "DE"}]}},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert marketer_api.patch("/api/segments/poles/", {"kind": "static"}, format="json").status_code == 400
    assert marketer_api.patch("/api/segments/everyone/", {"name": "All"}, format="json").status_code == 409
    segment_create(name="User", key="user-of-poles", definition=ref("poles"))
    conflict = marketer_api.patch("/api/segments/poles/", {"key": "polska"}, format="json")
    assert conflict.status_code == 409
    assert "user-of-poles" in conflict.json()["message"]
    assert marketer_api.delete("/api/segments/poles/").status_code == 409
    assert marketer_api.delete("/api/segments/user-of-poles/").status_code == 204
    assert marketer_api.delete("/api/segments/poles/").status_code == 204


def test_preview(analyst_api, poles):
    pl = CustomerFactory.create_batch(3, country="PL")
    compute(poles)
    CustomerFactory(country="DE")
    response = analyst_api.post("/api/segments/preview/", {"definition": PL}, format="json")
    body = response.json()
    assert body["count"] == 3
    assert [s["id"] for s in body["sample"]] == sorted(c.pk for c in pl)
    assert set(body["sample"][0]) == {"id", "external_id", "email"}
    assert body["summary"]
    de = {"match": "any", "conditions": [{"attribute": "country", "operator": "is", "value": "DE"}]}
    compared = analyst_api.post("/api/segments/preview/", {"definition": de, "segment": "POLES"}, format="json").json()
    assert (compared["count"], compared["added"], compared["removed"]) == (1, 1, 3)
    bad = analyst_api.post("/api/segments/preview/", {"definition": {"match": "some"}}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["pointer"] is not None
    unknown = analyst_api.post("/api/segments/preview/", {"definition": PL, "segment": "ghost"}, format="json")
    assert unknown.status_code == 400


def test_members_listing_and_changes(marketer_api, analyst_api, db):
    static = segment_create(name="VIP", key="vip", kind="static")
    customers = CustomerFactory.create_batch(3)
    added = marketer_api.post(
        "/api/segments/vip/members/", {"external_ids": [c.external_id for c in customers] + ["ghost"]}, format="json"
    )
    assert added.status_code == 200
    assert added.json() == {"added": 3, "unchanged": 0, "unknown": ["ghost"]}
    assert set(LedgerEntry.objects.filter(segment=static).values_list("reason", flat=True)) == {"api"}
    page = analyst_api.get("/api/segments/vip/members/", {"page_size": 2}).json()
    assert "count" not in page and page["next"]
    assert set(page["results"][0]) == {"id", "external_id", "email", "entered_at"}
    rest = analyst_api.get(page["next"]).json()
    assert len(page["results"]) + len(rest["results"]) == 3
    removed = marketer_api.post(
        "/api/segments/vip/members/remove/", {"external_ids": [customers[0].external_id]}, format="json"
    )
    assert removed.json() == {"removed": 1, "unchanged": 0, "unknown": []}
    assert Membership.objects.filter(segment=static).count() == 2
    assert marketer_api.post("/api/segments/vip/members/", {"external_ids": []}, format="json").status_code == 400
    too_many = {"external_ids": [str(i) for i in range(10_001)]}
    assert marketer_api.post("/api/segments/vip/members/", too_many, format="json").status_code == 400
    segment_create(name="Rules", key="rules", definition=PL)
    assert marketer_api.post("/api/segments/rules/members/", {"external_ids": ["a"]}, format="json").status_code == 409
    assert analyst_api.post("/api/segments/vip/members/", {"external_ids": ["a"]}, format="json").status_code == 403


def test_recompute_returns_a_job(marketer_api, poles, django_capture_on_commit_callbacks):
    CustomerFactory(country="PL")
    with django_capture_on_commit_callbacks(execute=True):
        response = marketer_api.post("/api/segments/poles/recompute/")
    assert response.status_code == 202
    job = response.json()
    assert response["Location"] == f"/api/jobs/{job['id']}/"
    assert job["kind"] == "recompute"
    poles.refresh_from_db()
    assert poles.status == "ready" and poles.member_count == 1
    polled = marketer_api.get(f"/api/jobs/{job['id']}/")
    if polled.status_code == 200:  # the jobs endpoint belongs to the customers API
        assert polled.json()["status"] == "succeeded"
    segment_create(name="Static", key="static-one", kind="static")
    assert marketer_api.post("/api/segments/static-one/recompute/").status_code == 409


def test_copy_and_history(marketer_api, poles, db):
    copy = marketer_api.post(
        "/api/segments/everyone/copy/", {"name": "All of them", "key": "all-of-them"}, format="json"
    )
    assert copy.status_code == 201
    assert copy.json()["prebuilt"] is False and copy.json()["status"] == "pending"
    assert (
        marketer_api.post("/api/segments/poles/copy/", {"name": "X", "key": "all-of-them"}, format="json").status_code
        == 400
    )
    CustomerFactory(country="PL")
    compute(poles)
    compute(poles)
    history = marketer_api.get("/api/segments/poles/history/").json()
    assert history["count"] == 2
    assert {(h["size"], h["reason"]) for h in history["results"]} == {(1, "definition_changed")}
    assert sorted(h["entered"] for h in history["results"]) == [0, 1]
    static = segment_create(name="Picked", key="picked", kind="static")
    segment_members_add(segment=static, external_ids=[CustomerFactory().external_id])
    twin = marketer_api.post("/api/segments/picked/copy/", {"name": "Picked too"}, format="json").json()
    assert twin["member_count"] == 1
