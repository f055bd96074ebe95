"""Browser: build segments with the condition builder by clicking, preview, save, see members."""

import json
from pathlib import Path

import pytest

from segmentation.models import Segment
from tests.factories import CustomerFactory, EventFactory

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
pytestmark = pytest.mark.django_db(transaction=True)


def _pick(page, scope, picker_class, value):
    """Open a Tom Select picker inside `scope` and click the option with `value`."""
    scope.locator(f".ts-wrapper.{picker_class} .ts-control").click()
    option = page.locator(f".ts-dropdown .option[data-value='{value}']").first
    option.scroll_into_view_if_needed()
    option.click()


def _settle(page):
    """Wait until the debounced preview has answered: its errors and counts move the layout."""
    page.wait_for_function("!['', 'Updating…'].includes(document.getElementById('seg-preview-status').textContent)")


def _click(page, locator):
    _settle(page)
    locator.click()


def _definition(page):
    return json.loads(page.locator("input[name=definition]").input_value())


def _wait_preview(page):
    page.wait_for_function(
        "document.getElementById('seg-preview').getAttribute('data-state') === 'ready'"
        " && document.getElementById('seg-preview-status').textContent === 'Up to date.'"
    )
    return int(page.get_attribute("#seg-preview", "data-count"))


@pytest.fixture
def shop(db):
    spenders = [CustomerFactory(country="PL", first_name=f"Ola{i}") for i in range(3)]
    EventFactory(customer=spenders[0], name="Order Completed", properties={"revenue": 150})
    EventFactory(customer=spenders[1], name="Order Completed", properties={"revenue": 80})
    EventFactory(customer=spenders[1], name="Order Completed", properties={"revenue": "40.50"})
    EventFactory(customer=spenders[2], name="Order Completed", properties={"revenue": 50})
    rich_german = CustomerFactory(country="DE")
    EventFactory(customer=rich_german, name="Order Completed", properties={"revenue": 900})
    for c in spenders:
        EventFactory(customer=c, name="Page Viewed", context={"device": {"type": "mobile"}})
    return spenders


def test_build_poland_spenders_by_clicking_preview_save_and_see_members(admin_page, live_server, admin_api, shop):
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/add/")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    page.fill("#id_name", "Polish spenders")

    page.click("#seg-builder .seg-add-attribute")
    condition = page.locator(".seg-cond-attribute").first
    _pick(page, condition, "seg-attr-picker", "country")
    condition = page.locator(".seg-cond-attribute").first
    assert condition.locator("select.seg-op").input_value() == "is"
    _pick(page, condition, "seg-value-choice", "PL")

    _click(page, page.locator("#seg-builder > .seg-group > .seg-add-bar .seg-add-event"))
    event = page.locator(".seg-cond-event").first
    _pick(page, event, "seg-event-picker", "Order Completed")
    page.locator(".seg-cond-event select.seg-measure").select_option("aggregate")
    event = page.locator(".seg-cond-event").first
    assert event.locator("select.seg-agg-fn").input_value() == "sum"
    event.locator("select.seg-op").first.select_option("more_than")
    event.locator("input.seg-value-input").first.fill("100")

    count = _wait_preview(page)
    assert page.locator("#seg-preview-diff").is_hidden()  # enter/leave only for an existing segment
    definition = _definition(page)
    assert definition == {
        "match": "all",
        "conditions": [
            {"attribute": "country", "operator": "is", "value": "PL"},
            {
                "event": "Order Completed",
                "aggregate": {
                    "function": "sum",
                    "property": "properties.revenue",
                    "operator": "more_than",
                    "value": 100,
                },
            },
        ],
    }
    api = admin_api.post("/api/segments/preview/", {"definition": definition}, format="json").json()
    assert count == api["count"] == 2
    assert "Poland" in page.text_content("#seg-preview-summary") or "PL" in page.text_content("#seg-preview-summary")
    sample = page.locator("#seg-preview-sample li").all_text_contents()
    assert any(shop[0].external_id in s for s in sample) and any(shop[1].external_id in s for s in sample)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(SHOTS / "builder.png"), full_page=True)

    page.click("input[name=_continue]")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    segment = Segment.objects.get(name="Polish spenders")
    assert segment.definition == definition
    # Editing an existing segment: the preview also says who would enter and leave.
    assert _wait_preview(page) == 2
    assert page.locator("#seg-preview-diff").is_visible()
    assert page.text_content("#seg-preview-added") == "0" and page.text_content("#seg-preview-removed") == "0"
    page.goto(f"{live_server.url}/admin/segmentation/segment/{segment.pk}/overview/")
    segment.refresh_from_db()
    assert segment.member_count == 2, segment.status
    members = page.locator(".seg-members tbody tr").all_text_contents()
    assert len(members) == 2 and shop[0].external_id in members[0] and shop[1].external_id in members[1]


def test_build_nested_any_all_with_event_condition(admin_page, live_server, shop):
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/add/")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    page.fill("#id_name", "Mobile Poles or VIPs")
    root = page.locator("#seg-builder > .seg-group")
    root.locator(":scope > .seg-group-head select.seg-match").select_option("any")

    # A nested "all" group: the builder seeds it with an empty attribute condition.
    _click(page, root.locator(":scope > .seg-add-bar .seg-add-group"))
    inner = root.locator(".seg-conditions .seg-group").first
    assert inner.locator(":scope > .seg-group-head select.seg-match").input_value() == "all"
    _pick(page, inner.locator(".seg-cond-attribute").first, "seg-attr-picker", "country")
    inner = root.locator(".seg-conditions .seg-group").first
    inner.locator(".seg-cond-attribute select.seg-op").select_option("is_not")
    inner = root.locator(".seg-conditions .seg-group").first
    _pick(page, inner.locator(".seg-cond-attribute").first, "seg-value-choice", "GB")

    _click(page, inner.locator(":scope > .seg-add-bar .seg-add-event"))
    inner = root.locator(".seg-conditions .seg-group").first
    _pick(page, inner.locator(".seg-cond-event").first, "seg-event-picker", "Page Viewed")
    event = page.locator(".seg-cond-event").first
    event.locator("select.seg-window").select_option("last_days")
    event = page.locator(".seg-cond-event").first
    event.locator("input.seg-window-n").fill("30")
    _click(page, event.locator(".seg-add-filter").first)
    event = page.locator(".seg-cond-event").first
    _pick(page, event.locator(".seg-filter").first, "seg-prop-picker", "context.device.type")
    event = page.locator(".seg-cond-event").first
    event.locator(".seg-filter input.seg-value-input").fill("mobile")
    event.locator("select.seg-measure").select_option("count")
    event = page.locator(".seg-cond-event").first
    event.locator(".seg-sub-row select.seg-op").first.select_option("at_least")
    event.locator(".seg-sub-row input.seg-value-input").first.fill("1")

    # ...or tagged vip (a second top-level condition, "contains" on tags offers the tag chooser).
    _click(page, root.locator(":scope > .seg-add-bar .seg-add-attribute"))
    last = root.locator(":scope > .seg-conditions > li > .seg-cond-attribute").last
    _pick(page, last, "seg-attr-picker", "tags")
    last = root.locator(":scope > .seg-conditions > li > .seg-cond-attribute").last
    last.locator("select.seg-op").select_option("contains")
    last = root.locator(":scope > .seg-conditions > li > .seg-cond-attribute").last
    last.locator(".ts-wrapper.seg-value-tag .ts-control").click()
    page.keyboard.type("vip")
    page.keyboard.press("Enter")

    count = _wait_preview(page)
    expected = {
        "match": "any",
        "conditions": [
            {
                "match": "all",
                "conditions": [
                    {"attribute": "country", "operator": "is_not", "value": "GB"},
                    {
                        "event": "Page Viewed",
                        "where": [{"property": "context.device.type", "operator": "is", "value": "mobile"}],
                        "within": {"last_days": 30},
                        "count": {"operator": "at_least", "value": 1},
                    },
                ],
            },
            {"attribute": "tags", "operator": "contains", "value": "vip"},
        ],
    }
    assert _definition(page) == expected
    assert count == 3
    # The JSON view is kept in sync.
    page.click("#seg-json summary")
    assert json.loads(page.input_value("#seg-json-text")) == expected

    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}/admin/segmentation/segment/")
    assert Segment.objects.get(name="Mobile Poles or VIPs").definition == expected


def test_validation_errors_appear_beside_the_condition(admin_page, live_server):
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/add/")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    page.click("#seg-builder .seg-add-attribute")
    _pick(page, page.locator(".seg-cond-attribute").first, "seg-attr-picker", "total_spent")
    page.locator(".seg-cond-attribute select.seg-op").select_option("more_than")
    page.wait_for_selector(".seg-cond-attribute.seg-has-error .seg-errors li")
    assert page.locator(".seg-cond-attribute .seg-errors li").count() >= 1
    page.locator(".seg-cond-attribute input.seg-value-input").fill("100")
    _wait_preview(page)
    assert page.locator(".seg-has-error").count() == 0


EVERY_CONSTRUCT = {
    "match": "all",
    "negate": True,
    "conditions": [
        {"segment": "high-value-customers", "operator": "not_in"},
        {"attribute": "total_spent", "operator": "between", "value": [10, 20.5]},
        {"attribute": "tags", "operator": "is_any_of", "value": ["vip", "b2b"]},
        {"attribute": "birth_date", "operator": "less_than_days_ago", "value": 30},
        {"attribute": "last_order_at", "operator": "between", "value": ["2026-01-01", "2026-02-01"]},
        {"attribute": "age", "operator": "is_unknown"},
        {"attribute": "gender", "operator": "is", "value": "female"},
        {
            "match": "any",
            "conditions": [
                {
                    "event": "Email Opened",
                    "within": {"between": ["2026-01-01", "2026-01-31"]},
                    "count": {"operator": "is", "value": 0},
                },
                {
                    "event": "Order Completed",
                    "within": {"after": "2026-01-01"},
                    "count": {"operator": "between", "value": [2, 4]},
                    "followed_by": {
                        "event": "Email Clicked",
                        "where": [{"property": "properties.amount", "operator": "more_than", "value": 3}],
                    },
                },
                {
                    "event": "Order Completed",
                    "aggregate": {
                        "function": "avg",
                        "property": "properties.revenue",
                        "operator": "at_least",
                        "value": 9.99,
                    },
                },
                {"event": "Product Added", "within": {"last_days": 7}, "not_followed_by": {"event": "Order Completed"}},
                {
                    "event": "Page Viewed",
                    "within": {"last_hours": 12},
                    "where": [
                        {"property": "properties.path", "operator": "starts_with", "value": "/shop"},
                        {"property": "context.device.type", "operator": "is_any_of", "value": ["mobile", "tablet"]},
                        {"property": "properties.coupon", "operator": "has_any_value"},
                    ],
                },
            ],
        },
    ],
}


def test_every_construct_loads_into_the_builder_unchanged(admin_page, live_server):
    from segmentation import services

    # The pre-built segment exists after migrations, but transactional tests flush it.
    if not Segment.objects.filter(key="high-value-customers").exists():
        services.segment_create(name="High value", key="high-value-customers", kind="static")
    segment = services.segment_create(name="Everything", key="everything", definition=EVERY_CONSTRUCT)
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/{segment.pk}/change/")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    assert _definition(page) == EVERY_CONSTRUCT
    assert _wait_preview(page) >= 0
    assert page.locator(".seg-has-error").count() == 0
    # Reorder by button and undo it: the definition follows the builder.
    page.locator(".seg-cond-segment .seg-node-tools button[title='Move down']").click()
    assert _definition(page)["conditions"][1] == {"segment": "high-value-customers", "operator": "not_in"}
    page.locator(".seg-cond-segment .seg-node-tools button[title='Move up']").click()
    assert _definition(page) == EVERY_CONSTRUCT
    # Saving without touching anything keeps the definition as it was.
    page.click("input[name=_continue]")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    segment.refresh_from_db()
    assert segment.definition == EVERY_CONSTRUCT


def test_build_cart_abandoners_with_a_sequence(admin_page, live_server, shop):
    cart = CustomerFactory(country="PL")
    EventFactory(customer=cart, name="Product Added", properties={"sku": "A1"})
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/add/")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    page.fill("#id_name", "Abandoned carts")
    _click(page, page.locator("#seg-builder .seg-add-event"))
    _pick(page, page.locator(".seg-cond-event"), "seg-event-picker", "Product Added")
    page.locator(".seg-cond-event select.seg-window").select_option("last_days")
    page.locator(".seg-cond-event input.seg-window-n").fill("7")
    page.locator(".seg-cond-event select.seg-sequence").select_option("not_followed_by")
    _settle(page)
    _pick(page, page.locator(".seg-cond-event"), "seg-seq-event", "Order Completed")
    assert _wait_preview(page) == 1
    assert _definition(page) == {
        "match": "all",
        "conditions": [
            {"event": "Product Added", "within": {"last_days": 7}, "not_followed_by": {"event": "Order Completed"}}
        ],
    }
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}/admin/segmentation/segment/")
    assert Segment.objects.get(name="Abandoned carts").member_count == 1


def test_static_segment_form_has_no_builder_but_a_tag_chooser(admin_page, live_server):
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/add/")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    page.fill("#id_name", "VIP list")
    page.select_option("#id_kind", "static")
    assert page.locator("#seg-builder-module").is_hidden()
    page.locator(".ts-wrapper.vTextField .ts-control").click()
    page.keyboard.type("vip")
    page.keyboard.press("Enter")
    page.click("input[name=_save]")
    page.wait_for_url("**/members/")
    segment = Segment.objects.get(name="VIP list")
    assert segment.kind == "static" and segment.definition is None
    assert list(segment.tags.values_list("name", flat=True)) == ["vip"]
    page.goto(f"{live_server.url}/admin/segmentation/segment/{segment.pk}/change/")
    page.wait_for_selector(".ts-wrapper.vTextField .ts-control .item[data-value='vip']")
    assert page.locator("#seg-builder").count() == 0


def test_json_view_applies_a_pasted_definition(admin_page, live_server):
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/add/")
    page.wait_for_selector("#seg-builder[data-ready='1']")
    page.click("#seg-json summary")
    page.fill("#seg-json-text", "{not json")
    page.click("#seg-json-apply")
    assert page.text_content("#seg-json-error")
    pasted = {"match": "any", "conditions": [{"attribute": "email", "operator": "ends_with", "value": ".uk"}]}
    page.fill("#seg-json-text", json.dumps(pasted))
    page.click("#seg-json-apply")
    assert page.text_content("#seg-json-error") == ""
    assert page.locator(".seg-cond-attribute select.seg-op").input_value() == "ends_with"
    assert page.locator(".seg-cond-attribute input.seg-value-input").input_value() == ".uk"
    assert _definition(page) == pasted
