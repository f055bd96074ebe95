"""Whitelist of the attributes a definition may name, with their type and where they come from.

`customers.attributes` is the single source of built-in names and types; this module adds how
the engine reads each one (a stored column, a value computed from events, or a custom key) and
loads the custom attribute registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from customers.attributes import OPERATORS_BY_TYPE, PROFILE_ATTRIBUTES, SYSTEM_ATTRIBUTES

ORDER_EVENT = "Order Completed"
REVENUE_PATH = ("properties", "revenue")
CUSTOM_PREFIX = "custom."

# Stored system attributes are plain columns; the rest are computed from events or tags.
STORED_SYSTEM = {"created_at", "updated_at", "first_seen_at", "last_seen_at"}
COMPUTED_SYSTEM = {"age", "event_count", "orders_count", "total_spent", "last_order_at", "tags"}
# Stored normalised with a known case (customers.normalize), so equality can use the column's index.
UPPER_COLUMNS = {"country"}
LOWER_COLUMNS = {"email"}


@dataclass(frozen=True)
class Field:
    key: str
    kind: str  # "profile" | "system" | "custom"
    type: str  # a customers.attributes.TYPES entry
    column: str | None = None  # model column for stored values
    custom_key: str | None = None  # key inside Customer.custom

    @property
    def operators(self) -> list[str]:
        if self.kind == "custom" and self.type == "list":
            # Custom lists are JSON arrays; v1 only asks whether one is set.
            return ["has_any_value", "is_unknown"]
        return OPERATORS_BY_TYPE[self.type]


BUILTIN_FIELDS: dict[str, Field] = {
    **{key: Field(key, "profile", type_, column=key) for key, _, type_, _ in PROFILE_ATTRIBUTES},
    **{
        key: Field(key, "system", type_, column=key if key in STORED_SYSTEM else None)
        for key, _, type_, _ in SYSTEM_ATTRIBUTES
    },
}


def field_for(name: str, registry: dict[str, str]) -> Field | None:
    """The Field for an attribute name, or None when it is unknown or unregistered."""
    if name in BUILTIN_FIELDS:
        return BUILTIN_FIELDS[name]
    if isinstance(name, str) and name.startswith(CUSTOM_PREFIX) and name in registry:
        return Field(name, "custom", registry[name], custom_key=name[len(CUSTOM_PREFIX) :])
    return None


def load_registry() -> dict[str, str]:
    """{"custom.<key>": type} for every registered custom attribute."""
    from customers.models import AttributeDefinition

    rows = AttributeDefinition.objects.filter(kind=AttributeDefinition.Kind.CUSTOM).values_list("key", "type")
    return dict(rows)


def load_segment_keys() -> set[str]:
    from segmentation.models import Segment

    return {key.lower() for key in Segment.objects.values_list("key", flat=True)}


def load_segment_graph() -> dict[str, set[str]]:
    """{lower key: lower keys it references} from the dependencies classified on save."""
    from segmentation.models import Segment

    graph = {}
    for key, deps in Segment.objects.values_list("key", "dependencies"):
        graph[key.lower()] = {s.lower() for s in (deps or {}).get("segments", [])}
    return graph
