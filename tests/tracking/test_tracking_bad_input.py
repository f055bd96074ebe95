"""Every bad input of issue 3: the right status, a code/message body, nothing stored changes."""

import json
import zlib

import pytest

from customers.models import Event
from tests.factories import SourceFactory

from .conftest import stored_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def existing(send):
    """Some stored data that a refused request must leave exactly as it is."""
    send("/v1/identify", {"userId": "u1", "anonymousId": "a1", "traits": {"email": "a@example.com"}})
    send("/v1/track", {"userId": "u1", "event": "E", "messageId": "m1"})
    return stored_state()


def assert_refused(result, status, existing, code=None):
    got_status, body = result
    assert got_status == status, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    if code:
        assert body["code"] == code
    assert stored_state() == existing


def test_malformed_json(send, source, existing):
    assert_refused(send("/v1/track", None, raw=b'{"userId": "u1", "event": '), 400, existing, "invalid_request")


@pytest.mark.parametrize("raw", [b'[{"userId": "u1", "event": "E"}]', b'"track"', b"42", b"null", b""])
def test_body_that_is_not_an_object(send, existing, raw):
    assert_refused(send("/v1/track", None, raw=raw), 400, existing)


def test_nan_is_not_json(send, source, existing):
    raw = f'{{"writeKey": "{source.write_key}", "userId": "u1", "event": "E", "properties": {{"x": NaN}}}}'
    assert_refused(send("/v1/track", None, raw=raw.encode()), 400, existing)


def test_missing_type_in_batch(send, existing):
    assert_refused(send("/v1/batch", {"batch": [{"userId": "u2", "event": "E"}]}), 400, existing)


def test_unknown_type_in_batch(send, existing):
    assert_refused(send("/v1/batch", {"batch": [{"type": "purchase", "userId": "u2"}]}), 400, existing)


def test_missing_event(send, existing):
    assert_refused(send("/v1/track", {"userId": "u2"}), 400, existing)
    assert_refused(send("/v1/track", {"userId": "u2", "event": "  "}), 400, existing)


def test_missing_both_ids(send, existing):
    assert_refused(send("/v1/track", {"event": "E", "userId": None, "anonymousId": ""}), 400, existing)


def test_missing_type_event_and_ids(send, existing):
    assert_refused(send("/v1/batch", {"batch": [{"properties": {}}]}), 400, existing)


@pytest.mark.parametrize("props", [[1, 2], "text", 5, True])
def test_properties_not_an_object(send, existing, props):
    assert_refused(send("/v1/track", {"userId": "u2", "event": "E", "properties": props}), 400, existing)


@pytest.mark.parametrize("field", ["traits", "context"])
def test_traits_or_context_not_an_object(send, existing, field):
    assert_refused(send("/v1/identify", {"userId": "u2", field: ["x"]}), 400, existing)


@pytest.mark.parametrize("ts", ["yesterday", "2026-13-45T00:00:00Z", 1700000000, "2026-01-01T25:00:00"])
def test_unparseable_timestamp(send, existing, ts):
    assert_refused(send("/v1/track", {"userId": "u2", "event": "E", "timestamp": ts}), 400, existing)


def test_far_future_timestamp(send, existing):
    assert_refused(
        send("/v1/track", {"userId": "u2", "event": "E", "timestamp": "2999-01-01T00:00:00Z"}), 400, existing
    )


def test_message_over_32kb(send, existing):
    body = {"userId": "u2", "event": "E", "properties": {"x": "a" * (32 * 1024)}}
    assert_refused(send("/v1/track", body), 400, existing, "payload_too_large")


def test_message_just_under_32kb_is_fine(send, source):
    body = {"writeKey": source.write_key, "userId": "u2", "event": "E", "properties": {"x": ""}}
    body["properties"]["x"] = "a" * (32 * 1024 - len(json.dumps(body)))
    assert len(json.dumps(body)) == 32 * 1024
    assert send("/v1/track", body)[0] == 200


def test_batch_over_500kb_after_decompression(send, existing):
    item = {"type": "track", "userId": "u2", "event": "E", "properties": {"x": "a" * 20000}}
    body = {"batch": [item] * 30}  # ~600 KB, but gzip shrinks it to a few KB on the wire
    assert_refused(send("/v1/batch", body, gzip_body=True), 400, existing, "payload_too_large")


def test_gzip_bomb_is_refused_without_inflating_it(send, source, existing):
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1024 * 1024)
    # 64 MB of zeros in ~64 KB on the wire: inflation stops at the 500 KB limit.
    bomb = compressor.compress(b'{"batch": "') + b"".join(compressor.compress(chunk) for _ in range(64))
    bomb += compressor.flush()
    assert len(bomb) < 100 * 1024
    assert_refused(send("/v1/batch", None, raw=bomb, encoding="gzip"), 400, existing, "payload_too_large")
    assert_refused(
        send("/v1/batch", None, raw=bomb, encoding="gzip", auth=source.write_key), 400, existing, "payload_too_large"
    )


def test_corrupt_gzip(send, existing):
    assert_refused(send("/v1/batch", None, raw=b"not gzip at all", encoding="gzip"), 400, existing)


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress"])
def test_other_content_encodings_are_415(send, existing, encoding):
    raw = json.dumps({"batch": [{"type": "track", "userId": "u2", "event": "E"}]}).encode()
    assert_refused(send("/v1/batch", None, raw=raw, encoding=encoding), 415, existing)


def test_unknown_write_key(send, existing):
    assert_refused(send("/v1/track", {"userId": "u2", "event": "E"}, key="nope"), 401, existing)


def test_disabled_write_key(send, existing):
    disabled = SourceFactory(enabled=False)
    assert_refused(send("/v1/track", {"userId": "u2", "event": "E"}, auth=disabled.write_key), 401, existing)


def test_nul_byte_in_strings(send, existing):
    assert_refused(send("/v1/track", {"userId": "u2", "event": "E\u0000vil"}), 400, existing)
    assert_refused(send("/v1/identify", {"userId": "u2", "traits": {"name\u0000": "x"}}), 400, existing)


def test_unpaired_surrogate(send, source, existing):
    raw = f'{{"writeKey": "{source.write_key}", "userId": "u2", "event": "\\ud800x"}}'.encode()
    assert_refused(send("/v1/track", None, raw=raw), 400, existing)


def test_invalid_utf8(send, source, existing):
    raw = f'{{"writeKey": "{source.write_key}", "userId": "u2", "event": "'.encode() + b'\xff\xfe"}'
    assert_refused(send("/v1/track", None, raw=raw), 400, existing)


def test_alias_without_previous_id(send, existing):
    assert_refused(send("/v1/alias", {"userId": "u2"}), 400, existing)


def test_id_of_wrong_type(send, existing):
    assert_refused(send("/v1/track", {"userId": {"id": 1}, "event": "E"}), 400, existing)


def test_replayed_message_id_is_a_silent_200_stored_once(send, existing):
    status, body = send("/v1/track", {"userId": "u1", "event": "Changed", "messageId": "m1"})
    assert (status, body) == (200, {"success": True})
    assert stored_state() == existing
    assert Event.objects.get().name == "E"
