"""Python side of the admin's condition builder: what the builder may offer, read-only.

The browser builder (static/admin/segmentation/builder.js) edits the definition language of
/work/shared/spec/segment-definitions.md; this module tells it which attributes, operators,
events, property names, segments and tags exist. Everything here is a read-only query, cheap
enough to run when the page opens (event names are cached briefly because `DISTINCT name`
walks the (name, timestamp, customer) index, which grows with the event table).
"""

from __future__ import annotations

from django.core.cache import cache

from customers.attributes import NUM_OPS, OPERATOR_LABELS, OPERATORS_BY_TYPE, builtin_attributes
from customers.models import AttributeDefinition, Event, Tag
from segmentation.models import Segment

EVENT_NAMES_CACHE_KEY = "sadmin:event-names"
EVENT_NAMES_CACHE_SECONDS = 60
EVENT_NAMES_LIMIT = 500
# Property suggestions come from the newest events of a name: recent traffic shows the
# properties marketers care about, and a bounded sample keeps the query index-only on
# (name, timestamp, customer) plus a few hundred row fetches.
PROPERTY_SAMPLE_SIZE = 300
KIND_LABELS = {"profile": "Profile", "system": "System", "custom": "Custom"}
WELL_KNOWN_EVENTS = [
    "Page Viewed",
    "Product Viewed",
    "Product Added",
    "Order Completed",
    "Email Opened",
    "Email Clicked",
]
# Operators whose value is a day count (labelled "(UTC)" with dates, decisions 36).
DAYS_OPERATORS = ["less_than_days_ago", "more_than_days_ago"]


def builder_attributes() -> list[dict]:
    """Every attribute a definition may name, profile, system then custom, with its operators."""
    rows = {key: (label, kind, type_, desc) for key, label, kind, type_, desc in builtin_attributes()}
    for attr in AttributeDefinition.objects.all().only("key", "label", "kind", "type", "description"):
        if attr.kind == AttributeDefinition.Kind.CUSTOM or attr.key not in rows:
            rows[attr.key] = (attr.label or attr.key, attr.kind, attr.type, attr.description)
    order = {"profile": 0, "system": 1, "custom": 2}
    items = sorted(rows.items(), key=lambda item: (order.get(item[1][1], 3), item[0] if item[1][1] == "custom" else ""))
    return [
        {
            "key": key,
            "label": label,
            "kind": kind,
            "group": KIND_LABELS.get(kind, kind.title()),
            "type": type_,
            "description": desc,
            "operators": OPERATORS_BY_TYPE.get(type_, []),
        }
        for key, (label, kind, type_, desc) in items
    ]


def builder_event_names() -> list[str]:
    """Event names seen in the data (plus the conventional ones), alphabetical."""
    names = cache.get(EVENT_NAMES_CACHE_KEY)
    if names is None:
        names = list(
            Event.objects.order_by("name").values_list("name", flat=True).distinct()[:EVENT_NAMES_LIMIT],
        )
        cache.set(EVENT_NAMES_CACHE_KEY, names, EVENT_NAMES_CACHE_SECONDS)
    return sorted(set(names) | set(WELL_KNOWN_EVENTS), key=str.lower)


def _paths(data, prefix: str, out: set[str], depth: int = 0) -> None:
    if not isinstance(data, dict) or depth > 4:
        return
    for key, value in data.items():
        path = f"{prefix}.{key}"
        if isinstance(value, dict) and value:
            _paths(value, path, out, depth + 1)
        elif not isinstance(value, list):
            out.add(path)


def builder_property_names(*, event: str) -> list[str]:
    """`properties.*` and `context.*` paths seen on the newest events of that name."""
    out: set[str] = set()
    rows = Event.objects.filter(name=event).order_by("-timestamp").values_list("properties", "context")
    for properties, context in rows[:PROPERTY_SAMPLE_SIZE]:
        _paths(properties, "properties", out)
        _paths(context, "context", out)
    if event == "Order Completed":
        out.add("properties.revenue")
    return sorted(out, key=lambda p: (not p.startswith("properties."), p.lower()))


def builder_meta(*, exclude_segment_id: int | None = None) -> dict:
    """All the builder needs to open: attributes, operators and labels, events, segments, tags."""
    segments = Segment.objects.order_by("name").values("id", "key", "name", "kind")
    return {
        "attributes": builder_attributes(),
        "operator_labels": OPERATOR_LABELS,
        "num_operators": NUM_OPS,
        "days_operators": DAYS_OPERATORS,
        "events": builder_event_names(),
        "segments": [
            {"key": s["key"], "name": s["name"], "kind": s["kind"]} for s in segments if s["id"] != exclude_segment_id
        ],
        "tags": list(Tag.objects.order_by("name").values_list("name", flat=True)[:1000]),
        "countries": _countries(),
        "genders": ["female", "male", "other"],
    }


def _countries() -> list[dict]:
    import pycountry

    return sorted(({"code": c.alpha_2, "name": c.name} for c in pycountry.countries), key=lambda c: c["name"])
