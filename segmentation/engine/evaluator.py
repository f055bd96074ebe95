"""Pure-Python twin of the compiler: decides one profile, and explains the decision.

Same semantics as compiler.py (read its docstring for the assumptions); the tests hold the two
equal on random definitions and data. Used for tests and the single-profile "why is this
customer in (or not)?" explanation; previews and recomputes run the SQL compiler (decisions 10).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from customers.normalize import fold

from . import values as V
from .fields import LOWER_COLUMNS, ORDER_EVENT, UPPER_COLUMNS, Field, field_for, load_registry

NEGATED = {"is_not": "is", "is_none_of": "is_any_of", "does_not_contain": "contains", "is_unknown": "has_any_value"}
MISSING = object()


@dataclass
class EventData:
    id: int
    name: str
    timestamp: dt.datetime
    received_at: dt.datetime
    properties: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)


@dataclass
class CustomerData:
    id: int
    profile: dict = field(default_factory=dict)  # profile attribute -> stored value (None = unknown)
    custom: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    first_seen_at: dt.datetime | None = None
    last_seen_at: dt.datetime | None = None
    events: list[EventData] = field(default_factory=list)


def customer_data_from_db(customers) -> list[CustomerData]:
    """CustomerData for customer ids or a Customer queryset, with tags and events (ordered by id)."""
    from customers.models import Customer, Event

    from .fields import PROFILE_ATTRIBUTES

    qs = customers if hasattr(customers, "model") else Customer.objects.filter(pk__in=list(customers))
    qs = qs.order_by("pk").prefetch_related("tags")
    result = []
    by_id = {}
    for c in qs:
        data = CustomerData(
            id=c.pk,
            profile={key: getattr(c, key) for key, *_ in PROFILE_ATTRIBUTES},
            custom=dict(c.custom or {}),
            tags=[t.name for t in c.tags.all()],
            created_at=c.created_at,
            updated_at=c.updated_at,
            first_seen_at=c.first_seen_at,
            last_seen_at=c.last_seen_at,
        )
        by_id[c.pk] = data
        result.append(data)
    for e in Event.objects.filter(customer_id__in=list(by_id)).order_by("pk"):
        by_id[e.customer_id].events.append(
            EventData(e.pk, e.name, e.timestamp, e.received_at, e.properties or {}, e.context or {})
        )
    return result


def evaluate(
    definition: dict,
    profile: CustomerData,
    *,
    now: dt.datetime,
    memberships: dict[str, set[int]],
    registry: dict[str, str] | None = None,
) -> bool:
    """Whether the profile matches the (validated) definition at `now`."""
    return _Evaluator(now, memberships, registry).node(definition, profile)


def explain(
    definition: dict,
    profile: CustomerData,
    *,
    now: dt.datetime,
    memberships: dict[str, set[int]],
    registry: dict[str, str] | None = None,
) -> list[dict]:
    """Every node with whether it matched: [{"pointer", "matched", "text"}], root first."""
    from .summary import describe

    ev = _Evaluator(now, memberships, registry)
    rows = []

    def walk(node, pointer):
        rows.append({"pointer": pointer, "matched": ev.node(node, profile), "text": describe(node)})
        for i, child in enumerate(node.get("conditions", [])):
            walk(child, f"{pointer}/conditions/{i}")

    walk(definition, "")
    return rows


class _Evaluator:
    def __init__(self, now, memberships, registry):
        self.now = now
        self.memberships = {k.lower(): v for k, v in memberships.items()}
        self._registry = registry

    @property
    def registry(self):
        if self._registry is None:
            self._registry = load_registry()
        return self._registry

    def node(self, node: dict, c: CustomerData) -> bool:
        if "conditions" in node:
            test = all if node["match"] == "all" else any
            result = test(self.node(child, c) for child in node["conditions"]) if node["conditions"] else True
            return not result if node.get("negate") else result
        if "segment" in node:
            inside = c.id in self.memberships.get(node["segment"].lower(), set())
            return inside if node["operator"] == "in" else not inside
        if "attribute" in node:
            return self.attribute(node, c)
        if "event" in node:
            return self.event(node, c)
        raise ValueError(f"not a definition node: {node!r}")

    # -- attributes ---------------------------------------------------------------------------
    def attribute(self, node: dict, c: CustomerData) -> bool:
        field_ = field_for(node["attribute"], self.registry if node["attribute"].startswith("custom.") else {})
        if field_ is None:
            raise ValueError(f"unknown attribute {node['attribute']!r}")
        operator, value = node["operator"], node.get("value")
        if operator in NEGATED:
            return not self.positive(field_, NEGATED[operator], value, c)
        return self.positive(field_, operator, value, c)

    def positive(self, f: Field, operator: str, value, c: CustomerData) -> bool:
        if operator == "is_any_of" and f.key != "tags":
            return any(self.positive(f, "is", item, c) for item in value)
        if f.key == "tags":
            return tags_test([t.lower() for t in c.tags], operator, value)
        if f.key in ("event_count", "orders_count", "total_spent", "last_order_at"):
            return self.event_attribute(f.key, operator, value, c)
        if f.key == "age":
            birth = c.profile.get("birth_date")
            if birth is None:
                return False
            if operator == "has_any_value":
                return True
            age = V.age_of(birth, self.now.astimezone(dt.UTC).date())
            return any(
                (low is None or age >= low) and (high is None or age <= high)
                for low, high in V.age_ranges(operator, value)
            )
        if f.kind == "custom":
            return self.custom(f, operator, value, c.custom.get(f.custom_key, MISSING))
        stored = c.profile.get(f.key) if f.kind == "profile" else getattr(c, f.key)
        if f.type == "string":
            if operator == "is" and f.key in UPPER_COLUMNS | LOWER_COLUMNS:
                folded = fold(value)
                return stored is not None and stored == (folded.upper() if f.key in UPPER_COLUMNS else folded)
            return text_test(stored, operator, value)
        if stored is None:
            return False
        if operator == "has_any_value":
            return True
        if f.type == "date":
            return V.in_bounds(stored, V.date_bounds(operator, value, now=self.now))
        return V.in_bounds(stored, V.datetime_bounds(operator, value, now=self.now))

    def custom(self, f: Field, operator: str, value, stored) -> bool:
        if operator == "has_any_value":
            return json_known(stored)
        if f.type == "string":
            return text_test(stored if isinstance(stored, str) else None, operator, value)
        if f.type == "number":
            return number_test(json_number(stored, strings=False), operator, value)
        if f.type == "boolean":
            return isinstance(stored, bool) and stored is value
        if not isinstance(stored, str):
            return False
        return V.in_bounds(stored, V.stored_text_bounds(f.type, operator, value, now=self.now))

    def event_attribute(self, key: str, operator: str, value, c: CustomerData) -> bool:
        events = [e for e in c.events if e.timestamp <= self.now and (key == "event_count" or e.name == ORDER_EVENT)]
        if key == "last_order_at":
            if not events:
                return False
            if operator == "has_any_value":
                return True
            latest = max(e.timestamp for e in events)
            return V.in_bounds(latest, V.datetime_bounds(operator, value, now=self.now))
        if operator == "has_any_value":
            return True
        if key == "total_spent":
            amount = V.round6(sum_numbers(json_number(_path(e, "properties.revenue"), strings=True) for e in events))
            return V.compare(operator, amount, value)
        return V.compare(operator, Decimal(len(events)), value)

    # -- events -------------------------------------------------------------------------------
    def matching(self, node: dict, c: CustomerData) -> list[EventData]:
        bounds = V.window_bounds(node["within"], now=self.now) if "within" in node else (None, False, None, False)
        return [
            e
            for e in c.events
            if e.name == node["event"]
            and e.timestamp <= self.now
            and V.in_bounds(e.timestamp, bounds)
            and all(self.property_filter(item, e) for item in node.get("where", []))
        ]

    def property_filter(self, item: dict, e: EventData) -> bool:
        operator, value = item["operator"], item.get("value")
        if operator in NEGATED:
            return not self.property_positive(item["property"], NEGATED[operator], value, e)
        return self.property_positive(item["property"], operator, value, e)

    def property_positive(self, path: str, operator: str, value, e: EventData) -> bool:
        if operator == "is_any_of":
            return any(self.property_positive(path, "is", item, e) for item in value)
        stored = _path(e, path)
        if operator == "has_any_value":
            return json_known(stored)
        if operator == "is" and isinstance(value, bool):
            return isinstance(stored, bool) and stored is value
        if isinstance(value, str):
            return text_test(stored if isinstance(stored, str) else None, operator, value)
        return number_test(json_number(stored, strings=True), operator, value)

    def event(self, node: dict, c: CustomerData) -> bool:
        events = self.matching(node, c)
        for key, negated in (("followed_by", False), ("not_followed_by", True)):
            if key in node:
                followers = self.matching({"event": node[key]["event"], "where": node[key].get("where", [])}, c)
                events = [e for e in events if any(_later(f, e) for f in followers) is not negated]
        if "count" in node:
            return V.compare(node["count"]["operator"], Decimal(len(events)), node["count"]["value"])
        if "aggregate" in node:
            spec = node["aggregate"]
            numbers = [
                n for n in (json_number(_path(e, spec["property"]), strings=True) for e in events) if n is not None
            ]
            function = spec["function"]
            if function == "sum":
                return V.compare(spec["operator"], V.round6(sum_numbers(numbers)), spec["value"])
            if not numbers:
                return False
            result = {
                "avg": lambda: V.round6(sum_numbers(numbers) / len(numbers)),
                "min": lambda: min(numbers),
                "max": lambda: max(numbers),
            }[function]()
            return V.compare(spec["operator"], result, spec["value"])
        return bool(events)


# ------------------------------------------------------------------------------
# Value tests shared by attributes and event properties
# ------------------------------------------------------------------------------
def text_test(stored: str | None, operator: str, value) -> bool:
    if operator == "has_any_value":
        return stored is not None and stored != ""
    text = stored.lower() if stored is not None else ""
    folded = fold(value)
    if operator == "is":
        return text == folded
    if operator == "starts_with":
        return text.startswith(folded)
    if operator == "ends_with":
        return text.endswith(folded)
    if operator == "contains":
        return folded in text
    raise ValueError(f"operator {operator!r} does not apply to text")


def tags_test(tags: list[str], operator: str, value) -> bool:
    if operator == "has_any_value":
        return bool(tags)
    if operator == "is_any_of":
        wanted = {fold(v) for v in value}
        return any(t in wanted for t in tags)
    folded = fold(value)
    if operator == "contains":
        return folded in tags
    if operator == "starts_with":
        return any(t.startswith(folded) for t in tags)
    if operator == "ends_with":
        return any(t.endswith(folded) for t in tags)
    raise ValueError(f"operator {operator!r} does not apply to tags")


def number_test(number: Decimal | None, operator: str, value) -> bool:
    if number is None:
        return False
    if operator == "has_any_value":
        return True
    return V.compare(operator, number, value)


def json_number(stored, *, strings: bool) -> Decimal | None:
    if isinstance(stored, bool) or stored is None or stored is MISSING:
        return None
    if isinstance(stored, int | float):
        return V.to_number(stored)
    if strings and isinstance(stored, str) and V.NUMERIC_RE.match(stored):
        return Decimal(stored)
    return None


def json_known(stored) -> bool:
    return stored is not MISSING and stored is not None and stored != "" and stored != []


def sum_numbers(numbers) -> Decimal:
    return sum((n for n in numbers if n is not None), Decimal(0))


def _path(e: EventData, path: str):
    column, *keys = path.split(".")
    current = e.properties if column == "properties" else e.context
    for key in keys:
        if not isinstance(current, dict) or key not in current:
            return MISSING
        current = current[key]
    return current


def _later(f: EventData, e: EventData) -> bool:
    return (f.timestamp, f.received_at, f.id) > (e.timestamp, e.received_at, e.id)
