"""Segment-compatible tracking endpoints (tracking-api.md).

Plain Django views rather than DRF: this is the hot path, and the wire contract (200 with
{"success": true}, {"code", "message"} errors, CORS for any origin) is not DRF's.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from customers.models import Source
from customers.services.inbox import messages_accept

from .parsing import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_WIRE_BYTES,
    ROUTE_TYPES,
    TrackingError,
    basic_username,
    parse_json,
    parse_payload,
    read_body,
    write_key_from,
)

ALLOWED_HEADERS = ("Authorization", "Content-Type", "X-Retry-Count", "AnonymousId", "SentAt")
BUNDLE_DIR = Path(settings.BASE_DIR) / "static" / "tracking" / "analytics-next"


def _json(status: int, payload: dict, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(payload, ensure_ascii=False), status=status, content_type="application/json; charset=utf-8"
    )
    for key, value in (headers or {}).items():
        response[key] = value
    return _cors(response)


def _cors(response: HttpResponse, request=None) -> HttpResponse:
    """Any origin, never credentials (decisions 20)."""
    response["Access-Control-Allow-Origin"] = "*"
    if request is not None:
        requested = [h.strip() for h in request.headers.get("Access-Control-Request-Headers", "").split(",")]
        # The Rsa-* family cannot be written as a wildcard, so requested ones are echoed.
        extra = [h for h in requested if h.lower().startswith("rsa-")]
        response["Access-Control-Allow-Headers"] = ", ".join([*ALLOWED_HEADERS, *extra])
        response["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
        response["Access-Control-Max-Age"] = "86400"
    return response


def _error(exc: TrackingError, extra: dict | None = None) -> HttpResponse:
    headers = {"Retry-After": str(exc.retry_after)} if getattr(exc, "retry_after", None) else None
    return _json(exc.status, {"code": exc.code, "message": exc.message, **(extra or {})}, headers)


def _source(key: str) -> Source:
    source = Source.objects.filter(write_key=key).only("pk", "enabled", "write_key").first()
    if source is None or not source.enabled:
        raise TrackingError(401, "invalid_write_key", "The write key is unknown or its source is disabled.")
    return source


def _throttle(source: Source, count: int) -> None:
    """Optional per-source limit in messages per second (TESSERA_TRACKING_RATE_LIMIT, 0 = off)."""
    limit = getattr(settings, "TESSERA_TRACKING_RATE_LIMIT", 0)
    if not limit:
        return
    window = int(timezone.now().timestamp())
    key = f"tracking-rate:{source.pk}:{window}"
    cache.add(key, 0, timeout=5)
    try:
        used = cache.incr(key, count)
    except ValueError:  # expired between add and incr
        used = count
    if used > limit:
        exc = TrackingError(429, "rate_limited", "Too many messages for this write key; retry later.")
        exc.retry_after = 1
        raise exc


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # the body read below is bounded anyway


@csrf_exempt
def tracking_view(request, route: str):
    """/v1/<call>, /v1/batch and /beacon/v1/batch."""
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=200), request)
    if request.method != "POST":
        return _json(405, {"code": "method_not_allowed", "message": "Use POST."}, {"Allow": "POST, OPTIONS"})
    received_at = timezone.now()
    route_type = ROUTE_TYPES.get(route)
    limit = MAX_MESSAGE_BYTES if route_type else MAX_BATCH_BYTES
    try:
        # A key in the header is checked before the body is even read.
        header_key = basic_username(request.headers.get("Authorization", ""))
        source = _source(header_key) if header_key else None
        if _content_length(request) > MAX_WIRE_BYTES:
            raise TrackingError(400, "payload_too_large", f"The request body is larger than {limit // 1024} KB.")
        try:
            raw = request.body
        except RequestDataTooBig:
            raise TrackingError(400, "payload_too_large", f"The request body is larger than {limit // 1024} KB.")
        body = read_body(raw=raw, content_encoding=request.headers.get("Content-Encoding", ""), limit=limit)
        data = parse_json(body)
        if source is None:
            key = write_key_from(authorization="", body=data, query_key=request.GET.get("writeKey"))
            source = _source(key)
        parsed = parse_payload(data=data, route_type=route_type, received_at=received_at, body_size=len(body))
        _throttle(source, len(parsed.messages))
    except TrackingError as exc:
        return _error(exc)
    except RecursionError:
        return _error(TrackingError(400, "invalid_request", "The body is nested too deeply."))
    if parsed.errors and not parsed.messages:
        return _json(
            400,
            {
                "code": "invalid_request",
                "message": f"All {len(parsed.errors)} messages were rejected.",
                "accepted": 0,
                "rejected": len(parsed.errors),
                "errors": parsed.errors,
            },
        )
    try:
        warnings = messages_accept(source=source, messages=parsed.messages, received_at=received_at)
    except RecursionError:
        return _error(TrackingError(400, "invalid_request", "A message is nested too deeply."))
    payload = {"success": True}
    if parsed.is_batch and parsed.errors:
        payload.update(accepted=len(parsed.messages), rejected=len(parsed.errors), errors=parsed.errors)
    if warnings:
        payload["warnings"] = warnings
    return _json(200, payload)


@csrf_exempt
def metrics_view(request):
    """The browser SDK's own telemetry: accepted and ignored."""
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=200), request)
    return _json(200, {"success": True})


def settings_view(request, write_key: str):
    """The CDN settings `@segment/analytics-next` loads: deliver everything back to this server."""
    source = Source.objects.filter(write_key=write_key, enabled=True).first()
    if source is None:
        return _json(404, {"code": "not_found", "message": "Unknown or disabled write key."})
    host = request.get_host()
    payload = {
        "integrations": {
            "Segment.io": {
                "apiKey": source.write_key,
                "apiHost": f"{host}/v1",
                "protocol": request.scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
            }
        },
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}, "identify": {"__default": {}}},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0, "host": f"{host}/v1"},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
    return _json(200, payload, {"Cache-Control": "public, max-age=60"})


def _bundle_file(name: str) -> FileResponse:
    path = (BUNDLE_DIR / name).resolve()
    if BUNDLE_DIR.resolve() not in path.parents or not path.is_file() or path.suffix != ".js":
        raise Http404("No such bundle.")
    response = FileResponse(path.open("rb"), content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=3600"
    return _cors(response)


def loader_view(request, write_key: str):
    """`<cdn>/analytics.js/v1/<key>/analytics.min.js`, the path the Segment snippet asks for."""
    return _bundle_file("standalone.js")


def bundle_view(request, name: str):
    """`<cdn>/analytics-next/bundles/<chunk>.js`: the lazily loaded chunks of the standalone build."""
    return _bundle_file(f"bundles/{name}")
