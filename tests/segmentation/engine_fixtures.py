"""Helpers for the engine tests: a frozen `now`, a custom registry, and a compiler == evaluator check."""

from __future__ import annotations

import datetime as dt

from customers.models import Customer, Event
from segmentation.engine import compile_definition, customer_data_from_db, evaluate, validate_definition
from segmentation.models import Membership, Segment

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)

REGISTRY = {
    "custom.plan": "string",
    "custom.score": "number",
    "custom.vip": "boolean",
    "custom.signup": "date",
    "custom.last_login": "datetime",
    "custom.items": "list",
    "custom.0": "number",
    "custom.address.city": "string",
}


def ago(**kwargs) -> dt.datetime:
    return NOW - dt.timedelta(**kwargs)


def customer(**fields) -> Customer:
    """A customer with exactly the given fields (everything else unknown), tags by name."""
    tags = fields.pop("tags", [])
    fields.setdefault("custom", {})
    c = Customer.objects.create(**fields)
    for name in tags:
        from customers.models import Tag

        tag = Tag.objects.filter(name__iexact=name).first() or Tag.objects.create(name=name)
        c.tags.add(tag)
    return c


def event(c: Customer, name: str, at: dt.datetime, received_at: dt.datetime | None = None, **kwargs) -> Event:
    return Event.objects.create(
        customer=c,
        name=name,
        timestamp=at,
        received_at=received_at or at,
        properties=kwargs.get("properties", {}),
        context=kwargs.get("context", {}),
    )


def segment_with(key: str, customers) -> Segment:
    seg = Segment.objects.create(key=key, name=key, kind=Segment.Kind.STATIC)
    Membership.objects.bulk_create([Membership(segment=seg, customer=c, entered_at=NOW) for c in customers])
    return seg


def memberships_from_db() -> dict[str, set[int]]:
    result: dict[str, set[int]] = {}
    for key, customer_id in Membership.objects.values_list("segment__key", "customer_id"):
        result.setdefault(key.lower(), set()).add(customer_id)
    return result


def sql_members(definition: dict, *, now: dt.datetime = NOW, registry=None) -> set[int]:
    q = compile_definition(definition, now=now, registry=REGISTRY if registry is None else registry)
    return set(Customer.objects.filter(q).values_list("pk", flat=True))


def py_members(definition: dict, *, now: dt.datetime = NOW, registry=None, data=None) -> set[int]:
    data = customer_data_from_db(Customer.objects.all()) if data is None else data
    memberships = memberships_from_db()
    registry = REGISTRY if registry is None else registry
    return {c.id for c in data if evaluate(definition, c, now=now, memberships=memberships, registry=registry)}


def members(definition: dict, *, now: dt.datetime = NOW, registry=None, validate: bool = True) -> set[int]:
    """Members by the SQL compiler, asserted equal to the evaluator's (and the complement's)."""
    registry = REGISTRY if registry is None else registry
    if validate:
        keys = {k.lower() for k in Segment.objects.values_list("key", flat=True)}
        assert validate_definition(definition, registry=registry, segment_keys=keys) == []
    sql = sql_members(definition, now=now, registry=registry)
    data = customer_data_from_db(Customer.objects.all())
    py = py_members(definition, now=now, registry=registry, data=data)
    assert sql == py, f"compiler {sorted(sql)} != evaluator {sorted(py)} for {definition}"
    negated = {**definition, "negate": not definition.get("negate", False)} if "conditions" in definition else None
    everyone = sorted(Customer.objects.values_list("pk", flat=True))
    if negated is not None:
        assert sql_members(negated, now=now, registry=registry) == set(everyone) - sql
    # Limited to some customers (incremental re-evaluation), the verdicts are the same.
    subset = everyone[::2]
    q = compile_definition(definition, now=now, registry=registry, customer_ids=subset)
    assert set(Customer.objects.filter(pk__in=subset).filter(q).values_list("pk", flat=True)) == sql & set(subset)
    return sql


def one(condition: dict) -> dict:
    return {"match": "all", "conditions": [condition]}


def attr(name: str, operator: str, value=None) -> dict:
    """An attribute condition node."""
    node = {"attribute": name, "operator": operator}
    if value is not None:
        node["value"] = value
    return node
