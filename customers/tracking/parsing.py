"""Turning Segment tracking requests into validated messages (tracking-api.md, decisions 19-21).

Everything here is pure: no database access. A request body becomes a list of `Message`s (or
per-item errors for a batch); `customers.services.ingest` stores them. Limits are measured on
the decompressed bytes (KB = 1,024 bytes): 32 KB per message, 500 KB per batch.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import zlib
from dataclasses import dataclass, field

from customers.normalize import NormalizationError, check_clean_deep, normalize_text, parse_datetime

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# A gzip body may be slightly larger than its content (incompressible data); anything bigger
# than this on the wire is refused before we even try to inflate it.
MAX_WIRE_BYTES = MAX_BATCH_BYTES + 64 * 1024
MAX_FUTURE = dt.timedelta(hours=24)
_SUSPECT_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F])")
MAX_ID_LENGTH = 255
MAX_EVENT_NAME = 200

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
EVENT_TYPES = ("track", "page", "screen", "group")
ROUTE_TYPES = {
    "identify": "identify",
    "i": "identify",
    "track": "track",
    "t": "track",
    "page": "page",
    "p": "page",
    "screen": "screen",
    "s": "screen",
    "group": "group",
    "g": "group",
    "alias": "alias",
    "a": "alias",
}


class TrackingError(Exception):
    """A refused request or message; rendered as {"code", "message"} with `status`."""

    def __init__(self, status: int, code: str, message: str):
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


def invalid(message: str) -> TrackingError:
    return TrackingError(400, "invalid_request", message)


@dataclass
class Message:
    """One accepted call, normalised. `timestamp` is skew-corrected (decisions 20).

    Event messages read back from the inbox carry `properties` and `context` as JSON text.
    """

    index: int
    type: str
    user_id: str | None
    anonymous_id: str | None
    timestamp: dt.datetime
    message_id: str | None
    context: dict | str
    event: str | None = None  # the stored event name for track/page/screen/group
    properties: dict | str = field(default_factory=dict)
    traits: dict = field(default_factory=dict)  # identify traits
    previous_id: str | None = None  # alias
    received_at: dt.datetime | None = None  # set when messages of several requests are stored together


# ------------------------------------------------------------------------------
# Request body
# ------------------------------------------------------------------------------
def read_body(*, raw: bytes, content_encoding: str, limit: int) -> bytes:
    """Inflate a gzip body without ever holding more than `limit` + 1 bytes (gzip bombs)."""
    encoding = (content_encoding or "").strip().lower()
    if len(raw) > MAX_WIRE_BYTES:
        raise TrackingError(400, "payload_too_large", f"The request body is larger than {limit // 1024} KB.")
    if encoding in ("", "identity"):
        body = raw
    elif encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise invalid("The body is not valid gzip data.")
        if len(body) <= limit and not inflater.eof:
            raise invalid("The gzip body is truncated.")
    else:
        raise TrackingError(415, "unsupported_encoding", f"Content-Encoding “{encoding}” is not supported; use gzip.")
    if len(body) > limit:
        raise TrackingError(400, "payload_too_large", f"The request body is larger than {limit // 1024} KB.")
    return body


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> dict:
    """Strict JSON object: valid UTF-8, no NaN/Infinity, no NUL or unpaired surrogates."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("The body is not valid UTF-8.")
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise invalid("The body is not valid JSON.")
    if not isinstance(data, dict):
        raise invalid("The body must be a JSON object.")
    if "\x00" not in text and not _SUSPECT_ESCAPE.search(text):
        # Decoded UTF-8 cannot hold a surrogate, so NUL and lone surrogates can only come from
        # JSON escapes; skipping the deep walk when there are none saves ~25% of request CPU.
        return data
    try:
        check_clean_deep(data)
    except NormalizationError as exc:
        raise invalid(str(exc))
    return data


def basic_username(authorization: str) -> str | None:
    """The username of an HTTP Basic header (the write key; the password is empty)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise TrackingError(401, "invalid_write_key", "The Authorization header is not valid Basic auth.")
    return decoded.partition(":")[0] or None


def write_key_from(*, authorization: str, body: dict, query_key: str | None) -> str:
    """The first write key present decides: Basic username, body `writeKey`, then `?writeKey=`."""
    key = basic_username(authorization)
    if key:
        return key
    body_key = body.get("writeKey")
    if isinstance(body_key, str) and body_key:
        return body_key
    if query_key:
        return query_key
    raise TrackingError(401, "invalid_write_key", "A write key is required (Basic auth username, writeKey).")


# ------------------------------------------------------------------------------
# Messages
# ------------------------------------------------------------------------------
def _identifier(data: dict, key: str) -> str | None:
    """Numeric ids become strings; "" and null are missing (decisions 20)."""
    value = data.get(key)
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise invalid(f"`{key}` must be a string or a number.")
        return None
    if isinstance(value, int | float):
        if abs(value) >= 10**MAX_ID_LENGTH:
            raise invalid(f"`{key}` is longer than {MAX_ID_LENGTH} characters.")
        value = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if not isinstance(value, str):
        raise invalid(f"`{key}` must be a string or a number.")
    value = normalize_text(value)
    if value is not None and len(value) > MAX_ID_LENGTH:
        raise invalid(f"`{key}` is longer than {MAX_ID_LENGTH} characters.")
    return value


def _object(data: dict, key: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"`{key}` must be an object.")
    return value


def _time(data: dict, key: str) -> dt.datetime | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid(f"`{key}` must be an ISO 8601 date and time.")
    try:
        return parse_datetime(value)
    except (NormalizationError, OverflowError):
        raise invalid(f"`{key}` is not an ISO 8601 date and time.")


def deep_merge(base: dict, override: dict) -> dict:
    """Batch-level context under the item's own (the item wins, recursively)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def message_build(
    item,
    *,
    index: int,
    type_: str | None,
    received_at: dt.datetime,
    batch_context: dict | None = None,
    batch_sent_at: dt.datetime | None = None,
) -> Message:
    """Validate one call (the body of a single route, or one batch item)."""
    if not isinstance(item, dict):
        raise invalid("A message must be a JSON object.")
    if type_ is None:
        type_ = item.get("type")
        if not isinstance(type_, str) or not type_:
            raise invalid("`type` is required.")
        if type_ not in MESSAGE_TYPES:
            raise invalid(f"`type` must be one of {', '.join(MESSAGE_TYPES)}.")
    user_id = _identifier(item, "userId")
    anonymous_id = _identifier(item, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise invalid("`userId` or `anonymousId` is required.")
    message_id = _identifier(item, "messageId")
    context = _object(item, "context")
    if batch_context:
        context = deep_merge(batch_context, context)
    properties = _object(item, "properties")
    traits = _object(item, "traits")
    timestamp = _time(item, "timestamp")
    sent_at = _time(item, "sentAt") or batch_sent_at
    if timestamp is None:
        timestamp = received_at
    elif sent_at is not None:
        # The client's clock may be off; the gap between its sentAt and our receivedAt is the skew.
        try:
            timestamp = timestamp + (received_at - sent_at)
        except OverflowError:
            raise invalid("`timestamp` corrected by `sentAt` is out of range.")
    if timestamp - received_at > MAX_FUTURE:
        raise invalid("`timestamp` is more than 24 hours in the future.")
    message = Message(
        index=index,
        type=type_,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=timestamp,
        message_id=message_id,
        context=context,
    )
    if type_ == "identify":
        # RudderStack's SDKs send identify traits in context.traits; top-level ones win.
        context_traits = context.get("traits")
        message.traits = {**context_traits, **traits} if isinstance(context_traits, dict) else traits
    elif type_ == "alias":
        message.previous_id = _identifier(item, "previousId")
        if message.previous_id is None or user_id is None:
            raise invalid("An alias needs both `previousId` and `userId`.")
    elif type_ == "track":
        message.event = _text(item, "event", required=True)
        message.properties = properties
    elif type_ in ("page", "screen"):
        message.event = "Page Viewed" if type_ == "page" else "Screen Viewed"
        message.properties = dict(properties)
        for key in ("name", "category"):
            value = _text(item, key)
            if value is not None:
                message.properties[key] = value
    else:  # group
        message.event = "Group Identified"
        message.properties = dict(properties)
        if traits:
            message.properties["traits"] = traits
        group_id = _identifier(item, "groupId")
        if group_id is not None:
            message.properties["group_id"] = group_id
    return message


def _text(item: dict, key: str, *, required: bool = False) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"`{key}` must be a string.")
    value = normalize_text(value)
    if value is None and required:
        raise invalid(f"`{key}` is required.")
    if value is not None and key == "event" and len(value) > MAX_EVENT_NAME:
        raise invalid(f"`event` is longer than {MAX_EVENT_NAME} characters.")
    return value


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def item_size(item) -> int:
    """Bytes of the item as compact UTF-8 JSON (the batch's own whitespace does not count)."""
    return len(_COMPACT.encode(item).encode("utf-8"))


@dataclass
class Parsed:
    messages: list[Message]
    errors: list[dict]  # {"index", "messageId", "code", "message"} for refused batch items
    is_batch: bool


def parse_payload(*, data: dict, route_type: str | None, received_at: dt.datetime, body_size: int) -> Parsed:
    """A single call (`route_type` given) or a batch (`route_type` None)."""
    if route_type is not None:
        message = message_build(data, index=0, type_=route_type, received_at=received_at)
        return Parsed(messages=[message], errors=[], is_batch=False)
    items = data.get("batch")
    if not isinstance(items, list):
        raise invalid("`batch` must be a list of messages.")
    if not items:
        raise invalid("`batch` is empty.")
    batch_context = _object(data, "context")
    batch_sent_at = _time(data, "sentAt")
    messages, errors = [], []
    for index, item in enumerate(items):
        try:
            # An item can only pass 32 KB in a body that does; skip measuring small batches.
            if body_size > MAX_MESSAGE_BYTES and item_size(item) > MAX_MESSAGE_BYTES:
                raise TrackingError(400, "payload_too_large", "The message is larger than 32 KB.")
            messages.append(
                message_build(
                    item,
                    index=index,
                    type_=None,
                    received_at=received_at,
                    batch_context=batch_context,
                    batch_sent_at=batch_sent_at,
                )
            )
        except TrackingError as exc:
            message_id = item.get("messageId") if isinstance(item, dict) else None
            errors.append(
                {
                    "index": index,
                    "messageId": message_id if isinstance(message_id, str | int) else None,
                    "code": exc.code,
                    "message": exc.message,
                }
            )
    return Parsed(messages=messages, errors=errors, is_batch=True)
