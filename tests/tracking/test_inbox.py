"""The tracking inbox (decisions 23): event messages are stored first and drained set-based."""

import datetime as dt
import json

import pytest
from django.db import transaction

from customers.models import Customer, CustomerIdentity, Event, InboxBatch
from customers.services import inbox
from customers.services.inbox import inbox_drain, inbox_pending

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _at(minutes: int) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


# Requests in order: anonymous visits, a login merging them, replays, out-of-order events,
# an alias, an identify with traits (one of them invalid), page and group calls.
SCENARIO = [
    {"batch": [{"type": "track", "anonymousId": "a1", "event": "Visit", "messageId": "m1", "timestamp": _at(5)}]},
    {
        "batch": [
            {"type": "page", "anonymousId": "a1", "name": "Home", "messageId": "m2", "timestamp": _at(3)},
            {"type": "track", "anonymousId": "a2", "event": "Visit", "messageId": "m3", "timestamp": _at(4)},
        ]
    },
    {
        "batch": [
            {
                "type": "identify",
                "userId": "u1",
                "anonymousId": "a1",
                "traits": {"email": "U1@Example.com"},
                "timestamp": _at(6),
            },
            {
                "type": "track",
                "userId": "u1",
                "anonymousId": "a2",
                "event": "Login",
                "messageId": "m4",
                "timestamp": _at(7),
            },
            {"type": "track", "userId": "u1", "event": "Replay", "messageId": "m1", "timestamp": _at(1)},
        ]
    },
    {
        "batch": [
            {"type": "track", "userId": "u2", "event": "Order Completed", "messageId": "m5", "timestamp": _at(-60)}
        ]
    },
    {"batch": [{"type": "alias", "userId": "u3", "previousId": "u2", "timestamp": _at(8)}]},
    {
        "batch": [
            {
                "type": "group",
                "userId": "u3",
                "groupId": "g1",
                "traits": {"plan": "pro"},
                "messageId": "m6",
                "timestamp": _at(9),
            },
            {"type": "identify", "userId": "u3", "traits": {"country": "Atlantis", "plan": "pro"}, "timestamp": _at(9)},
            {"type": "track", "userId": "u3", "event": "Late", "messageId": "m7", "timestamp": _at(-120)},
        ]
    },
]


def _state():
    """The stored outcome without database ids (they differ between runs)."""
    owner = {}
    for c in Customer.objects.all():
        anon = sorted(CustomerIdentity.objects.filter(customer=c).values_list("kind", "value"))
        owner[c.pk] = c.external_id or str(anon)
    customers = sorted(
        (owner[c.pk], c.email, c.country, json.dumps(c.custom, sort_keys=True), c.first_seen_at, c.last_seen_at)
        for c in Customer.objects.all()
    )
    events = sorted(
        (owner[e.customer_id], e.name, e.timestamp, e.message_id, json.dumps(e.properties, sort_keys=True))
        for e in Event.objects.all()
    )
    identities = sorted((owner[i.customer_id], i.kind, i.value) for i in CustomerIdentity.objects.all())
    return customers, events, identities


def test_inbox_gives_the_same_result_as_processing_in_the_request(send, settings, source):
    outcomes = []
    for use_inbox in (False, True):
        settings.TESSERA_TRACKING_INBOX = use_inbox
        responses = [send("/v1/batch", {**body, "sentAt": None}) for body in SCENARIO]
        assert not InboxBatch.objects.exists()
        outcomes.append((responses, _state()))
        Event.objects.all().delete()
        Customer.objects.all().delete()
    (sync_responses, sync_state), (inbox_responses, inbox_state) = outcomes
    assert inbox_responses == sync_responses
    assert any("warnings" in body for _, body in inbox_responses)
    assert inbox_state == sync_state
    customers, events, _ = inbox_state
    assert len(events) == 7  # the replayed m1 is stored once, with its first payload
    assert ("u1", "Visit", T0 + dt.timedelta(minutes=5), "m1", "{}") in events


def test_queued_requests_are_processed_together_and_the_first_payload_wins(send, monkeypatch, source):
    monkeypatch.setattr(inbox, "_schedule_drain", lambda: None)
    first = {"type": "track", "userId": "u1", "event": "First", "messageId": "m", "timestamp": _at(10)}
    second = {"type": "track", "userId": "u1", "event": "Second", "messageId": "m", "timestamp": _at(0)}
    other = {"type": "track", "anonymousId": "a9", "event": "Other", "messageId": "n", "timestamp": _at(20)}
    for body in ({"batch": [first]}, {"batch": [second, other]}):
        assert send("/v1/batch", body) == (200, {"success": True})
    assert not Event.objects.exists()
    assert inbox_pending() == 3
    received = list(InboxBatch.objects.values_list("received_at", flat=True))

    assert inbox_drain() == 3
    assert not InboxBatch.objects.exists()
    assert sorted(Event.objects.values_list("name", "message_id")) == [("First", "m"), ("Other", "n")]
    assert Event.objects.get(message_id="m").received_at == received[0]
    assert Event.objects.get(message_id="n").received_at == received[1]
    # Seen times come from stored events only: the replay's earlier timestamp is not applied.
    u1 = Customer.objects.get(external_id="u1")
    assert u1.first_seen_at == u1.last_seen_at == T0 + dt.timedelta(minutes=10)


def test_a_claim_takes_at_most_its_limit(source):
    InboxBatch.objects.bulk_create(
        [InboxBatch(source=source, received_at=T0, count=1, messages="[]") for _ in range(70)]
    )
    with transaction.atomic():
        assert len(inbox._claim(32)) == 32
        assert InboxBatch.objects.count() == 38


def test_a_batch_that_fails_on_its_own_is_set_aside(send, monkeypatch, source):
    monkeypatch.setattr(inbox, "_schedule_drain", lambda: None)
    send("/v1/batch", {"batch": [{"type": "track", "userId": "u1", "event": "Before"}]})
    bad = InboxBatch.objects.create(source=source, received_at=T0, count=1, messages="not json")
    send("/v1/batch", {"batch": [{"type": "track", "userId": "u1", "event": "After"}]})

    assert inbox_drain() == 2
    assert sorted(Event.objects.values_list("name", flat=True)) == ["After", "Before"]
    bad.refresh_from_db()
    assert "JSONDecodeError" in bad.error
    assert inbox_pending() == 0
    assert inbox_drain() == 0  # not retried


def test_a_request_with_only_identify_calls_uses_no_inbox(send, monkeypatch, source):
    monkeypatch.setattr(inbox, "_schedule_drain", lambda: pytest.fail("nothing to drain"))
    status, body = send("/v1/identify", {"userId": "u1", "traits": {"email": "not an email"}})
    assert status == 200 and body["warnings"][0]["field"] == "traits.email"
    assert not InboxBatch.objects.exists()
    assert Customer.objects.filter(external_id="u1").exists()
