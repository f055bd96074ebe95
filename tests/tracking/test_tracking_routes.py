import datetime as dt

import pytest
from django.test import Client

from customers.models import Customer, CustomerIdentity, Event
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db

CALLS = {
    "identify": {"userId": "u1", "traits": {"email": "A@Example.com"}},
    "track": {"userId": "u1", "event": "Product Viewed", "properties": {"sku": "X"}},
    "page": {"userId": "u1", "name": "Home", "category": "Docs", "properties": {"path": "/"}},
    "screen": {"userId": "u1", "name": "Settings"},
    "group": {"userId": "u1", "groupId": 42, "traits": {"plan": "pro"}},
    "alias": {"userId": "u1", "previousId": "old-1"},
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("short", [False, True])
def test_every_route_and_short_alias_answers_200_success(send, call, short):
    path = f"/v1/{call[0]}" if short else f"/v1/{call}"
    status, body = send(path, CALLS[call])
    assert (status, body) == (200, {"success": True})
    assert Customer.objects.get().external_id == "u1"


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b", "/beacon/v1/batch"])
def test_batch_routes(send, path):
    batch = [{"type": "track", "userId": "u1", "event": "A"}, {"type": "identify", "anonymousId": "a1"}]
    status, body = send(path, {"batch": batch})
    assert (status, body) == (200, {"success": True})
    assert Event.objects.get().name == "A"
    assert Customer.objects.count() == 2


def test_page_screen_group_become_events_with_top_level_fields_winning(send):
    send("/v1/page", {"userId": "u1", "name": "Home", "category": "Docs", "properties": {"name": "ignored", "x": 1}})
    send("/v1/screen", {"userId": "u1", "name": "Settings"})
    send("/v1/group", {"userId": "u1", "groupId": 42, "traits": {"plan": "pro"}, "properties": {"group_id": "no"}})
    events = {e.name: e.properties for e in Event.objects.all()}
    assert events == {
        "Page Viewed": {"name": "Home", "category": "Docs", "x": 1},
        "Screen Viewed": {"name": "Settings"},
        "Group Identified": {"group_id": "42", "traits": {"plan": "pro"}},
    }


def test_identify_and_alias_are_not_events_but_set_seen_times(send):
    send("/v1/identify", {"userId": "u1", "timestamp": "2026-01-02T00:00:00Z"})
    send("/v1/alias", {"userId": "u1", "previousId": "p", "timestamp": "2026-01-05T00:00:00Z"})
    send("/v1/track", {"userId": "u1", "event": "E", "timestamp": "2026-01-03T00:00:00Z"})
    c = Customer.objects.get(external_id="u1")
    assert Event.objects.count() == 1
    assert c.first_seen_at == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert c.last_seen_at == dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def test_late_events_widen_seen_times_without_touching_updated_at(send):
    send("/v1/track", {"userId": "u1", "event": "E", "timestamp": "2026-01-03T00:00:00Z"})
    before = Customer.objects.get().updated_at
    send("/v1/track", {"userId": "u1", "event": "E", "timestamp": "2025-12-01T00:00:00Z"})
    c = Customer.objects.get()
    assert c.first_seen_at == dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
    assert c.last_seen_at == dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    assert c.updated_at == before


def test_numeric_ids_become_strings_and_empty_is_missing(send):
    status, _ = send("/v1/track", {"userId": 123, "anonymousId": "", "event": "E"})
    assert status == 200
    assert Customer.objects.get().external_id == "123"
    assert not CustomerIdentity.objects.exists()


def test_event_keeps_context_message_id_source_and_received_at(send, source):
    send("/v1/track", {"userId": "u1", "event": "E", "messageId": "m1", "context": {"ip": "1.2.3.4"}})
    e = Event.objects.get()
    assert (e.message_id, e.context, e.source_id) == ("m1", {"ip": "1.2.3.4"}, source.pk)
    assert e.received_at is not None


# ------------------------------------------------------------------------------
# Write keys
# ------------------------------------------------------------------------------
def test_basic_auth_username_is_the_write_key(send, source):
    status, _ = send("/v1/track", {"userId": "u1", "event": "E"}, auth=source.write_key)
    assert status == 200


def test_query_string_write_key(send, source):
    status, _ = send("/v1/track", {"userId": "u1", "event": "E"}, key=False, query=f"?writeKey={source.write_key}")
    assert status == 200


def test_first_present_key_decides(send, source):
    body = {"userId": "u1", "event": "E", "writeKey": "wrong"}
    assert send("/v1/track", body, auth=source.write_key)[0] == 200
    body = {"userId": "u1", "event": "E", "writeKey": source.write_key}
    assert send("/v1/track", body, auth="wrong")[0] == 401
    body = {"userId": "u1", "event": "E", "writeKey": "wrong"}
    assert send("/v1/track", body, query=f"?writeKey={source.write_key}")[0] == 401


@pytest.mark.parametrize("key", ["unknown", None])
def test_unknown_or_missing_key_is_401(send, key):
    status, body = send("/v1/track", {"userId": "u1", "event": "E", **({"writeKey": key} if key else {})}, key=False)
    assert status == 401
    assert body["code"] == "invalid_write_key" and body["message"]
    assert not Customer.objects.exists()


def test_disabled_source_is_401(send):
    disabled = SourceFactory(enabled=False)
    status, body = send("/v1/track", {"userId": "u1", "event": "E"}, key=disabled.write_key)
    assert status == 401 and body["code"] == "invalid_write_key"
    assert not Event.objects.exists()


def test_text_plain_body_like_the_browser_sdk(send):
    status, _ = send("/v1/t", {"userId": "u1", "event": "E"}, content_type="text/plain")
    assert status == 200
    assert Event.objects.count() == 1


def test_gzip_body(send):
    status, _ = send("/v1/batch", {"batch": [{"type": "track", "userId": "u1", "event": "E"}]}, gzip_body=True)
    assert status == 200
    assert Event.objects.count() == 1


def test_metrics_endpoint_is_ignored(db):
    response = Client().post("/v1/m", data="{}", content_type="text/plain")
    assert response.status_code == 200
    assert response.json() == {"success": True}


# ------------------------------------------------------------------------------
# CORS
# ------------------------------------------------------------------------------
def test_preflight_needs_no_key_and_allows_sdk_headers(db):
    response = Client().options(
        "/v1/t",
        HTTP_ORIGIN="http://shop.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type,x-retry-count,rsa-signature",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-retry-count", "anonymousid", "sentat", "rsa-signature"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_responses_and_errors_carry_cors_header(send, db):
    client = Client()
    ok = client.post("/v1/t", data="{}", content_type="application/json", HTTP_ORIGIN="http://x.example")
    assert ok["Access-Control-Allow-Origin"] == "*"


# ------------------------------------------------------------------------------
# Browser SDK support
# ------------------------------------------------------------------------------
def test_settings_point_the_browser_sdk_back_here(source):
    response = Client().get(f"/v1/projects/{source.write_key}/settings")
    assert response.status_code == 200
    seg = response.json()["integrations"]["Segment.io"]
    assert seg["apiKey"] == source.write_key
    assert seg["apiHost"] == "testserver/v1"
    assert seg["protocol"] == "http"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_settings_for_unknown_key_is_404(db):
    assert Client().get("/v1/projects/nope/settings").status_code == 404


def test_create_source_command_prints_the_write_key(db):
    from io import StringIO

    from django.core.management import call_command

    from customers.models import Source

    out = StringIO()
    call_command("create_source", "Shop", stdout=out)
    assert Source.objects.get(name="Shop").write_key == out.getvalue().strip()


def test_loader_and_chunks_are_served_from_vendored_static(source):
    from pathlib import Path

    client = Client()
    loader = client.get(f"/analytics.js/v1/{source.write_key}/analytics.min.js")
    assert loader.status_code == 200
    assert loader["Content-Type"].startswith("application/javascript")
    chunk = next(Path("static/tracking/analytics-next/bundles").glob("*.js")).name
    assert client.get(f"/analytics-next/bundles/{chunk}").status_code == 200
    assert client.get("/analytics-next/bundles/..%2F..%2FVERSION").status_code == 404
    assert client.get("/analytics-next/bundles/missing.js").status_code == 404


def test_snippet_points_the_loader_at_this_server(source, settings):
    settings.ALLOWED_HOSTS = ["tessera.example"]
    from django.test import RequestFactory

    from customers.tracking.snippet import tracking_snippet

    html = tracking_snippet(source, RequestFactory().get("/", HTTP_HOST="tessera.example:8000"))
    assert 'analytics._cdn="http://tessera.example:8000"' in html
    assert f'analytics.load("{source.write_key}")' in html
    assert "cdn.segment.com" not in html
