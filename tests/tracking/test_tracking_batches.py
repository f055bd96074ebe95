"""Batch outcomes, messageId dedup, clock skew and context merging (decisions 19-20)."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from customers.models import Customer, Event
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db


def test_batch_with_some_bad_messages_stores_the_good_ones(send):
    batch = [
        {"type": "track", "userId": "u1", "event": "A", "messageId": "ok-1"},
        {"type": "track", "userId": "u1", "messageId": "bad-1"},
        {"type": "track", "event": "B"},
        {"type": "track", "userId": "u1", "event": "C"},
        "not an object",
        {"type": "track", "userId": "u1", "event": "D", "properties": {"x": "a" * 33 * 1024}},
    ]
    status, body = send("/v1/batch", {"batch": batch})
    assert status == 200
    assert body["success"] is True
    assert (body["accepted"], body["rejected"]) == (2, 4)
    assert [(e["index"], e["messageId"], e["code"]) for e in body["errors"]] == [
        (1, "bad-1", "invalid_request"),
        (2, None, "invalid_request"),
        (4, None, "invalid_request"),
        (5, None, "payload_too_large"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert sorted(Event.objects.values_list("name", flat=True)) == ["A", "C"]


def test_all_bad_batch_is_400_with_the_errors(send):
    status, body = send("/v1/batch", {"batch": [{"type": "track", "userId": "u1"}, {"type": "nope"}]})
    assert status == 400
    assert body["code"] == "invalid_request" and body["message"]
    assert [e["index"] for e in body["errors"]] == [0, 1]
    assert not Event.objects.exists()


@pytest.mark.parametrize("batch", [[], "x", None])
def test_batch_must_be_a_non_empty_list(send, batch):
    status, body = send("/v1/batch", {"batch": batch})
    assert status == 400 and body["code"] == "invalid_request"


def test_duplicate_message_id_is_stored_once_and_first_wins(send):
    first = {"type": "track", "userId": "u1", "event": "First", "messageId": "m"}
    second = {"type": "track", "userId": "u1", "event": "Second", "messageId": "m"}
    assert send("/v1/batch", {"batch": [first, second]}) == (200, {"success": True})
    assert send("/v1/batch", {"batch": [second]}) == (200, {"success": True})
    assert list(Event.objects.values_list("name", flat=True)) == ["First"]


def test_message_ids_dedupe_per_source(send):
    other = SourceFactory()
    send("/v1/track", {"userId": "u1", "event": "E", "messageId": "m"})
    send("/v1/track", {"userId": "u1", "event": "E", "messageId": "m"}, key=other.write_key)
    assert Event.objects.count() == 2


def test_messages_without_message_id_are_not_deduplicated(send):
    send("/v1/track", {"userId": "u1", "event": "E"})
    send("/v1/track", {"userId": "u1", "event": "E"})
    assert Event.objects.count() == 2


def test_clock_skew_is_corrected_with_sent_at():
    # Pure: the device clock is two hours behind the server.
    from customers.tracking.parsing import message_build

    received = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
    item = {"userId": "u", "event": "E", "timestamp": "2026-06-15T09:55:00Z", "sentAt": "2026-06-15T10:00:00Z"}
    m = message_build(item, index=0, type_="track", received_at=received)
    assert m.timestamp == dt.datetime(2026, 6, 15, 11, 55, tzinfo=dt.UTC)


def test_batch_level_sent_at_applies_to_items(send):
    now = timezone.now()
    sent = (now - dt.timedelta(days=2)).isoformat()
    ts = (now - dt.timedelta(days=2, minutes=10)).isoformat()
    send("/v1/batch", {"sentAt": sent, "batch": [{"type": "track", "userId": "u", "event": "E", "timestamp": ts}]})
    e = Event.objects.get()
    assert abs(e.timestamp - (e.received_at - dt.timedelta(minutes=10))) < dt.timedelta(seconds=5)


def test_no_timestamp_means_received_at(send):
    send("/v1/track", {"userId": "u", "event": "E", "sentAt": "2020-01-01T00:00:00Z"})
    e = Event.objects.get()
    assert e.timestamp == e.received_at


def test_timestamp_without_sent_at_is_kept(send):
    send("/v1/track", {"userId": "u", "event": "E", "timestamp": "2026-01-01T10:00:00+02:00"})
    assert Event.objects.get().timestamp == dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)


def test_future_within_24h_after_correction_is_accepted(send):
    soon = (timezone.now() + dt.timedelta(hours=23)).isoformat()
    assert send("/v1/track", {"userId": "u", "event": "E", "timestamp": soon})[0] == 200
    # A far-future device clock is fine once sentAt corrects it.
    far = (timezone.now() + dt.timedelta(days=400)).isoformat()
    assert send("/v1/track", {"userId": "u", "event": "E", "timestamp": far, "sentAt": far})[0] == 200


def test_batch_context_merges_deeply_and_the_item_wins(send):
    body = {
        "context": {"library": {"name": "lib", "version": "1"}, "ip": "1.1.1.1"},
        "batch": [{"type": "track", "userId": "u", "event": "E", "context": {"library": {"version": "2"}}}],
    }
    send("/v1/batch", body)
    assert Event.objects.get().context == {"library": {"name": "lib", "version": "2"}, "ip": "1.1.1.1"}


def test_unknown_keys_and_explicit_nulls_are_fine(send):
    body = {"userId": "u", "event": "E", "properties": None, "context": None, "timestamp": None, "whatever": 1}
    assert send("/v1/track", body) == (200, {"success": True})


def test_rate_limit_answers_429_with_retry_after(send, settings):
    settings.TESSERA_TRACKING_RATE_LIMIT = 2
    from django.core.cache import cache

    cache.clear()
    body = {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 3}
    status, data = send("/v1/batch", body)
    assert status == 429 and data["code"] == "rate_limited"
    assert not Event.objects.exists()


def test_a_500kb_batch_of_tiny_messages(send, source):
    # 12,000 new visitors in one request: more values than SQLite allows in one statement.
    batch = [{"type": "page", "anonymousId": f"{i:x}"} for i in range(12_000)]
    raw = json.dumps({"writeKey": source.write_key, "batch": batch}, separators=(",", ":")).encode()
    assert len(raw) < 500 * 1024
    assert send("/v1/batch", None, raw=raw) == (200, {"success": True})
    assert Event.objects.count() == 12_000
    assert Customer.objects.count() == 12_000


def test_rate_limit_sets_retry_after(source, settings):
    from django.core.cache import cache
    from django.test import Client

    settings.TESSERA_TRACKING_RATE_LIMIT = 1
    cache.clear()
    body = json.dumps({"writeKey": source.write_key, "batch": [{"type": "track", "userId": "u", "event": "E"}] * 2})
    response = Client().post("/v1/batch", data=body, content_type="application/json")
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert response["Access-Control-Allow-Origin"] == "*"
