"""What a definition depends on, classified on save (decisions 28).

`events` lists event names whose arrival can change membership; "*" means any event (the
definition uses `event_count`). System attributes computed from orders add "Order Completed".
`time` is True when membership can change just because time passes: rolling windows,
`*_days_ago` operators and `age`. Absolute dates do not move; events timestamped in the future
are picked up by the regular sweep of all dynamic segments.
"""

from __future__ import annotations

from .fields import ORDER_EVENT

TIME_OPERATORS = {"less_than_days_ago", "more_than_days_ago"}
ORDER_ATTRIBUTES = {"orders_count", "total_spent", "last_order_at"}


def definition_dependencies(definition: dict) -> dict:
    """{"events": sorted names, "attributes": sorted keys, "segments": sorted lower keys, "time": bool}."""
    events, attributes, segments = set(), set(), set()
    time = False

    def walk(node):
        nonlocal time
        if not isinstance(node, dict):
            return
        for child in node.get("conditions", []) or []:
            walk(child)
        if "attribute" in node:
            name = node["attribute"]
            attributes.add(name)
            if name == "event_count":
                events.add("*")
            elif name in ORDER_ATTRIBUTES:
                events.add(ORDER_EVENT)
            if name == "age" or node.get("operator") in TIME_OPERATORS:
                time = True
        if "segment" in node:
            segments.add(str(node["segment"]).lower())
        if "event" in node:
            events.add(node["event"])
            for key in ("followed_by", "not_followed_by"):
                if isinstance(node.get(key), dict) and "event" in node[key]:
                    events.add(node[key]["event"])
            within = node.get("within") or {}
            if "last_days" in within or "last_hours" in within:
                time = True

    walk(definition)
    return {
        "events": sorted(events),
        "attributes": sorted(attributes),
        "segments": sorted(segments),
        "time": time,
    }
