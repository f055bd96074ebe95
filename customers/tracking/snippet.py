"""The tracking snippet a site owner pastes into their pages (shown on the Source admin page)."""

import json

from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from customers.models import Source


def tracking_cdn(request) -> str:
    """This server's origin: the browser SDK loads itself, its chunks and its settings from here."""
    return request.build_absolute_uri("/").rstrip("/")


def _js_string(value: str) -> str:
    # A JSON string is a JS string literal; escaping "<" keeps "</script>" from closing the tag.
    return mark_safe(json.dumps(value).replace("<", "\\u003c"))


def tracking_snippet(source: Source, request) -> str:
    """Segment's standard loader pointed at this server instead of cdn.segment.com.

    Returns the raw HTML to paste; escape it when displaying it inside a page.
    """
    context = {"write_key_js": _js_string(source.write_key), "cdn_js": _js_string(tracking_cdn(request))}
    return render_to_string("tracking/snippet.html", context)
