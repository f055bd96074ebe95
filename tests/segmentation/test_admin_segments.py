"""Segment admin: list, builder form (save through services), segment page, copy, delete warnings."""

import json

import pytest
from django.urls import reverse

from segmentation import services
from segmentation.models import LedgerEntry, Reason, Segment
from tests.factories import CustomerFactory, EventFactory

PL_SPENDERS = {
    "match": "all",
    "conditions": [
        {"attribute": "country", "operator": "is", "value": "PL"},
        {
            "event": "Order Completed",
            "aggregate": {"function": "sum", "property": "properties.revenue", "operator": "more_than", "value": 100},
        },
    ],
}


@pytest.fixture
def static_segment(segment):
    """The shared empty static segment (conftest), under the name these tests read best with."""
    return segment


def _dynamic(key="pl-spenders", definition=None, **kwargs):
    return services.segment_create(name=key.replace("-", " ").title(), key=key, definition=definition or PL_SPENDERS)


def test_changelist_shows_columns_filters_and_search(staff, static_segment):
    _dynamic(tags=None)
    response = staff.get(reverse("admin:segmentation_segment_changelist"), {"q": "hand"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Hand picked" in body and "Pl Spenders" not in body
    for column in ("Size", "Status", "Tags", "Owner"):
        assert column in body
    response = staff.get(reverse("admin:segmentation_segment_changelist"), {"kind__exact": "dynamic"})
    assert "Pl Spenders" in response.content.decode() and "Hand picked" not in response.content.decode()


def test_add_dynamic_segment_saves_through_services(staff, admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = staff.post(
            reverse("admin:segmentation_segment_add"),
            {
                "name": "Polish spenders",
                "key": "",
                "kind": "dynamic",
                "tag_names": "vip, poland",
                "description": "",
                "definition": json.dumps(PL_SPENDERS),
                "_continue": "1",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    segment = Segment.objects.get(name="Polish spenders")
    assert segment.key == "polish-spenders"
    assert segment.definition == PL_SPENDERS
    assert segment.owner == admin_user
    assert sorted(segment.tags.values_list("name", flat=True)) == ["poland", "vip"]
    assert segment.dependencies["events"] == ["Order Completed"]


def test_invalid_definition_is_not_saved_and_problems_reach_the_builder(staff):
    bad = {"match": "all", "conditions": [{"attribute": "total_spent", "operator": "more_than", "value": "lots"}]}
    response = staff.post(
        reverse("admin:segmentation_segment_add"),
        {"name": "Broken", "kind": "dynamic", "definition": json.dumps(bad)},
    )
    assert response.status_code == 200
    assert not Segment.objects.filter(name="Broken").exists()
    config = response.context["builder_config"]
    assert config["definition"] == bad
    assert any(p["pointer"].startswith("/conditions/0") for p in config["problems"])
    assert "shown beside" in response.content.decode()


def test_change_page_carries_builder_config(staff):
    segment = _dynamic()
    response = staff.get(reverse("admin:segmentation_segment_change", args=[segment.pk]))
    assert response.status_code == 200
    config = response.context["builder_config"]
    assert config["definition"] == PL_SPENDERS
    assert config["segmentKey"] == "pl-spenders"
    assert config["previewUrl"].endswith("/preview/")
    assert 'id="seg-builder"' in response.content.decode()


def test_update_definition_and_tags(staff, django_capture_on_commit_callbacks):
    segment = _dynamic()
    new = {"match": "any", "conditions": [{"attribute": "country", "operator": "is_any_of", "value": ["PL", "DE"]}]}
    with django_capture_on_commit_callbacks(execute=False):
        response = staff.post(
            reverse("admin:segmentation_segment_change", args=[segment.pk]),
            {"name": "Renamed", "key": "pl-spenders", "tag_names": "eu", "definition": json.dumps(new)},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    segment.refresh_from_db()
    assert (segment.name, segment.definition, segment.status) == ("Renamed", new, "pending")
    assert list(segment.tags.values_list("name", flat=True)) == ["eu"]


def test_prebuilt_segment_is_read_only_with_a_copy_link(staff):
    segment = Segment.objects.filter(prebuilt=True).first() or Segment.objects.create(
        key="everyone-x", name="Everyone X", definition={"match": "all", "conditions": []}, prebuilt=True
    )
    response = staff.get(reverse("admin:segmentation_segment_change", args=[segment.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "read-only" in body and reverse("admin:segmentation_segment_copy", args=[segment.pk]) in body
    assert response.context["builder_config"]["readonly"] is True
    assert 'name="definition"' not in body


def test_copy_view_copies_under_a_new_key(staff):
    segment = _dynamic()
    url = reverse("admin:segmentation_segment_copy", args=[segment.pk])
    page = staff.get(url)
    assert page.context["key"] == "pl-spenders-copy"
    response = staff.post(url, {"key": "pl-spenders-2", "name": "PL spenders 2"})
    assert response.status_code == 302
    copy = Segment.objects.get(key="pl-spenders-2")
    assert copy.definition == PL_SPENDERS
    again = staff.post(url, {"key": "PL-SPENDERS-2", "name": "dup"})
    assert again.status_code == 200 and "already exists" in again.content.decode()


def test_delete_warns_when_other_segments_refer(staff):
    base = _dynamic()
    _dynamic("refers", {"match": "all", "conditions": [{"segment": "pl-spenders", "operator": "in"}]})
    response = staff.get(reverse("admin:segmentation_segment_delete", args=[base.pk]))
    body = response.content.decode()
    assert "cannot be deleted" in body and "refers" in body
    action = staff.post(
        reverse("admin:segmentation_segment_changelist"),
        {"action": "delete_selected_segments", "_selected_action": [base.pk]},
    )
    assert "Kept: referred to by" in action.content.decode()
    staff.post(
        reverse("admin:segmentation_segment_changelist"),
        {"action": "delete_selected_segments", "_selected_action": [base.pk], "post": "yes"},
    )
    assert Segment.objects.filter(pk=base.pk).exists()


def test_delete_action_deletes_unreferenced_segments(staff, static_segment):
    staff.post(
        reverse("admin:segmentation_segment_changelist"),
        {"action": "delete_selected_segments", "_selected_action": [static_segment.pk], "post": "yes"},
    )
    assert not Segment.objects.filter(pk=static_segment.pk).exists()


def test_recompute_action_queues_a_job(staff, django_capture_on_commit_callbacks):
    segment = _dynamic()
    customer = CustomerFactory(country="PL")
    EventFactory(customer=customer, name="Order Completed", properties={"revenue": 150})
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(
            reverse("admin:segmentation_segment_changelist"),
            {"action": "recompute_selected", "_selected_action": [segment.pk]},
        )
    segment.refresh_from_db()
    assert segment.status == "ready" and segment.member_count == 1


def test_segment_page_shows_summary_size_sparkline_members_and_ledger(staff, static_segment):
    customers = CustomerFactory.create_batch(3)
    services.segment_members_add(segment=static_segment, customer_ids=[c.pk for c in customers], reason=Reason.MANUAL)
    services.segment_members_remove(segment=static_segment, customer_ids=[customers[0].pk], reason=Reason.MANUAL)
    url = reverse("admin:segmentation_segment_overview", args=[static_segment.pk])
    response = staff.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert response.context["spark"] is not None and "<polyline" in body
    assert [m["id"] for m in response.context["members"]["results"]] == [customers[1].pk, customers[2].pk]
    assert "Manual" in body and "Exited" in body and "Entered" in body
    assert LedgerEntry.objects.filter(segment=static_segment).count() == 4
    # searchable and keyset-paged
    response = staff.get(url, {"q": customers[2].external_id})
    assert [m["id"] for m in response.context["members"]["results"]] == [customers[2].pk]
    response = staff.get(url, {"page_size": 1})
    assert response.context["members"]["has_next"] is True
    response = staff.get(url, {"page_size": 1, "after": response.context["members"]["next_after"]})
    assert [m["id"] for m in response.context["members"]["results"]] == [customers[2].pk]


def test_dynamic_segment_page_has_summary(staff):
    segment = _dynamic()
    response = staff.get(reverse("admin:segmentation_segment_overview", args=[segment.pk]))
    assert response.status_code == 200
    assert response.context["summary"]
    assert "Recompute now" in response.content.decode()


def test_builder_meta_and_property_suggestions(staff):
    segment = _dynamic()
    EventFactory(name="Product Viewed", properties={"sku": "A1", "price": 3}, context={"device": {"type": "mobile"}})
    meta = staff.get(reverse("admin:segmentation_segment_builder_meta"), {"exclude": segment.pk}).json()
    groups = {a["group"] for a in meta["attributes"]}
    assert {"Profile", "System"} <= groups
    country = next(a for a in meta["attributes"] if a["key"] == "country")
    assert "is" in country["operators"] and country["type"] == "string"
    assert "Product Viewed" in meta["events"]
    assert "pl-spenders" not in [s["key"] for s in meta["segments"]]
    props = staff.get(reverse("admin:segmentation_segment_builder_properties"), {"event": "Product Viewed"}).json()
    assert props["properties"] == ["properties.price", "properties.sku", "context.device.type"]


def test_admin_views_need_permissions(client, nobody, analyst, static_segment):
    client.force_login(nobody)
    response = client.get(reverse("admin:segmentation_segment_builder_meta"))
    assert response.status_code == 302  # not staff: sent to the login page
    client.force_login(analyst)
    assert client.get(reverse("admin:segmentation_segment_overview", args=[static_segment.pk])).status_code == 200
    response = client.post(
        reverse("admin:segmentation_segment_members_add", args=[static_segment.pk]),
        data={"ids": [1]},
        content_type="application/json",
    )
    assert response.status_code == 403


def test_view_only_users_get_a_read_only_builder(client, analyst):
    segment = _dynamic()
    client.force_login(analyst)
    response = client.get(reverse("admin:segmentation_segment_change", args=[segment.pk]))
    assert response.status_code == 200
    assert response.context["builder_config"]["readonly"] is True


def test_a_service_refusal_on_save_is_shown_not_raised(staff, monkeypatch):
    segment = _dynamic()

    def refuse(**kwargs):
        raise services.SegmentConflict("Another user just changed this segment.")

    monkeypatch.setattr(services, "segment_update", refuse)
    response = staff.post(
        reverse("admin:segmentation_segment_change", args=[segment.pk]),
        {"name": "Renamed", "key": "pl-spenders", "definition": json.dumps(PL_SPENDERS)},
        follow=True,
    )
    assert "Another user just changed this segment." in response.content.decode()
    segment.refresh_from_db()
    assert segment.name == "Pl Spenders"
