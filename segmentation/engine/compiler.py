"""Compile a validated segment definition into one `Q` on `customers.Customer`.

`Customer.objects.filter(compile_definition(d, now=now))` is a single set-based query: no raw
SQL strings, no Python loops over customers. The Python evaluator (evaluator.py) is its twin and
the test oracle; tests assert both give the same members on PostgreSQL and SQLite.

Assumptions and choices:
- The input has passed `validate_definition`; the compiler raises ValueError on anything else.
- Two-valued logic (decisions 1): every leaf is a non-NULL boolean. Positive operators are
  written as "known AND test" (or as `pk IN (...)` / `EXISTS`, never NULL), so the negative
  operators (`is_not`, `is_none_of`, `does_not_contain`), `is_unknown` and `negate` are plain
  SQL NOT of their positive form and match unknown values, exactly as the evaluator does.
- Text compares as `COALESCE(LOWER(x), '')` against `fold(value)`; values are non-empty, so an
  unknown never matches. SQLite's LOWER is Python's str.lower (customers/apps.py); PostgreSQL
  folds with its ctype (C.UTF-8), which agrees with Python outside rare special cases (İ, ß).
  `email` (stored lower-cased) and `country` (stored upper-case alpha-2) use their column
  directly for equality so their indexes apply.
- Event property text is compared as stored (lower-cased, not re-trimmed); only JSON strings are
  text, only JSON numbers and numeric strings (decisions 4) are numbers, JSON booleans are
  booleans. Custom attributes are read in their registered type: a stored value of another
  JSON type is unknown.
- JSON paths are exact keys on both databases (expressions.py), never array indexes.
- Custom dates and datetimes compare as text: dates are "YYYY-MM-DD", datetimes fixed-width
  UTC text, so text order is time order (byte order on SQLite, C.UTF-8 on PostgreSQL).
- Numbers: exact numeric on PostgreSQL, REAL on SQLite; sums and averages are rounded to 6
  places before comparison (decisions 4).
- Counts and sums are total (decisions 2): a comparison false at 0 compiles to
  `pk IN (grouped subquery HAVING ...)` over the (name, timestamp, customer) index; one true at 0
  to a correlated `COALESCE((subquery), 0)` over (customer, name, timestamp). Counts true only at 0
  ("did not perform") are `NOT EXISTS`; counts true from 1 up ("at least once") are a semi-join.
- Sibling conditions of a group over the same event set share ONE grouped subquery (`Grouped`,
  `_merge_grouped`): `orders_count at_least 5` and `last_order_at less_than_days_ago 90` scan the
  orders once with `HAVING count(*) >= 5 AND max(timestamp) > ...`.
- `properties.revenue` is read from the stored `Event.revenue` (same expression, computed on
  write), which the (name, timestamp, customer) index INCLUDEs on PostgreSQL.
- `avg`/`min`/`max` over no values are unknown and match nothing, `is_not` included (the spec's
  aggregate rule is the more precise one).
- `age` compiles to birth_date bounds (values.age_at_least_bound), so no date arithmetic in SQL.
- Events with timestamp > now are ignored everywhere; `now` is always passed in.
- Sequences: a later event has a strictly later (timestamp, received_at, id); the follower is
  not limited by the condition's window, only by now.
- Segment references read current membership (segmentation.Membership), keys case-insensitive.

Plans on PostgreSQL 15, 1M customers / 5M events, 2 busy cores (EXPLAIN ANALYZE):
- mixed `country is PL` + `custom.plan is gold` + `Page Viewed in the last 30 days at least 3
  times`: hash join of the country index scan with a HashAggregate over an index-only scan of
  (name, timestamp, customer); about 1 s. Constants are kept out of GROUP BY and the event side
  carries no `id IS NOT NULL` guard, which is what makes the scan index-only.
- true-at-zero counts on a 100k-customer slice: correlated index-only probes of
  (customer, name, timestamp), about 0.02 ms each.
- `total_spent` read every order's JSON (heap), about 7 s for 625k orders; with `Event.revenue`
  in the index it is an index-only scan (0.7 s for 500k orders at 1M / 10M, docs/indexes.md).
  Recompute transactions turn JIT off (services/sql.py).
"""

from __future__ import annotations

import datetime as dt
import json
import operator as op
from functools import reduce

from django.db.models import (
    Avg,
    Count,
    Exists,
    F,
    FloatField,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    TextField,
    Value,
)
from django.db.models.functions import Coalesce, Lower, Round
from django.db.models.lookups import (
    Contains,
    EndsWith,
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
    LessThanOrEqual,
    StartsWith,
)

from customers.models import Customer, Event
from customers.normalize import fold

from . import values as V
from .expressions import JsonKind, JsonNumber, JsonRaw, JsonText, NumberLiteral
from .fields import LOWER_COLUMNS, ORDER_EVENT, REVENUE_PATH, UPPER_COLUMNS, Field, field_for, load_registry

TRUE_Q = Q(pk__isnull=False)
EVENT_ATTRIBUTES = ("event_count", "orders_count", "total_spent", "last_order_at")
NEGATED = {"is_not": "is", "is_none_of": "is_any_of", "does_not_contain": "contains", "is_unknown": "has_any_value"}
LIKE = {"starts_with": StartsWith, "ends_with": EndsWith, "contains": Contains}
CMP = {
    "less_than": LessThan,
    "more_than": GreaterThan,
    "at_most": LessThanOrEqual,
    "at_least": GreaterThanOrEqual,
}


def compile_definition(
    definition: dict, *, now: dt.datetime, registry: dict[str, str] | None = None, customer_ids=None
) -> Q:
    """The definition as a Q on Customer. `registry` ({"custom.x": type}) defaults to the database's.

    `customer_ids` (a list of ids or a values queryset) promises the Q will only be asked about
    those customers: event and tag subqueries are then limited to them, so re-evaluating a few
    customers does not group every customer's events. Membership of those customers is the same.
    """
    ctx = _Context(now=now, registry=load_registry() if registry is None else registry, customer_ids=customer_ids)
    return ctx.node(definition)


def event_filter(node: dict, *, now: dt.datetime) -> Q:
    """A Q on Event for the events an event condition counts (name, window, where, ts <= now)."""
    return _Context(now=now, registry={}).event_filter(node)


class _Context:
    def __init__(self, *, now: dt.datetime, registry: dict[str, str], customer_ids=None):
        self.now = now
        self.registry = registry
        self.customer_ids = customer_ids

    def events(self):
        """The event rows subqueries start from (only the promised customers' when given)."""
        if self.customer_ids is None:
            return Event.objects.all()
        return Event.objects.filter(customer_id__in=self.customer_ids)

    # -- groups -------------------------------------------------------------------------------
    def node(self, node: dict) -> Q:
        if "conditions" in node:
            return self.group(node)
        if "attribute" in node:
            return self.attribute(node)
        if "event" in node:
            return as_q(self.event(node))
        if "segment" in node:
            return self.segment(node)
        raise ValueError(f"not a definition node: {node!r}")

    def group(self, node: dict) -> Q:
        combine = {"all": op.and_, "any": op.or_}[node["match"]]
        parts = _merge_grouped([self.leaf(child) for child in node["conditions"]], combine)
        q = reduce(combine, parts) if parts else TRUE_Q
        return ~q if node.get("negate") else q

    def leaf(self, node: dict) -> Q | Grouped:
        """Like node(), but a condition over one grouped event set stays a Grouped, so that the
        enclosing group can merge it with its siblings over the same set."""
        if "attribute" in node and node["operator"] not in NEGATED and node["operator"] != "is_any_of":
            field = field_for(node["attribute"], self.registry)
            if field is not None and field.key in EVENT_ATTRIBUTES:
                return self.event_attribute(field.key, node["operator"], node.get("value"))
        if "event" in node:
            return self.event(node)
        return self.node(node)

    def segment(self, node: dict) -> Q:
        from segmentation.models import Membership

        q = Q(Exists(Membership.objects.filter(segment__key__iexact=node["segment"], customer=OuterRef("pk"))))
        return ~q if node["operator"] == "not_in" else q

    # -- attributes ---------------------------------------------------------------------------
    def attribute(self, node: dict) -> Q:
        field = field_for(node["attribute"], self.registry)
        if field is None:
            raise ValueError(f"unknown attribute {node['attribute']!r}")
        operator, value = node["operator"], node.get("value")
        if operator in NEGATED:
            return ~self.positive(field, NEGATED[operator], value)
        return self.positive(field, operator, value)

    def positive(self, field: Field, operator: str, value) -> Q:
        if operator == "is_any_of" and field.key != "tags":
            return reduce(op.or_, [self.positive(field, "is", item) for item in value])
        if field.key == "tags":
            return self.tags(operator, value)
        if field.key in EVENT_ATTRIBUTES:
            return as_q(self.event_attribute(field.key, operator, value))
        if field.key == "age":
            return self.age(operator, value)
        if field.kind == "custom":
            return self.custom(field, operator, value)
        return self.column(field, operator, value)

    def column(self, field: Field, operator: str, value) -> Q:
        col = field.column
        known = Q(**{f"{col}__isnull": False})
        if field.type == "string":
            if operator == "has_any_value":
                return known & ~Q(**{col: ""})
            if operator == "is" and field.key in UPPER_COLUMNS | LOWER_COLUMNS:
                folded = fold(value)
                return known & Q(**{col: folded.upper() if field.key in UPPER_COLUMNS else folded})
            return text_test(Lower(col), operator, value)
        if operator == "has_any_value":
            return known
        if field.type == "date":
            return known & bounds_q(F(col), V.date_bounds(operator, value, now=self.now))
        return known & bounds_q(F(col), V.datetime_bounds(operator, value, now=self.now))

    def custom(self, field: Field, operator: str, value) -> Q:
        keys = (field.custom_key,)
        if operator == "has_any_value":
            return json_known("custom", keys)
        if field.type == "string":
            return text_test(JsonText("custom", keys), operator, value)
        if field.type == "number":
            return number_test(JsonNumber("custom", keys, strings=False), operator, value)
        if field.type == "boolean":
            return Q(Exact(JsonKind("custom", keys), "true" if value else "false"))
        text = JsonText("custom", keys)
        return Q(IsNull(text, False)) & bounds_q(text, V.stored_text_bounds(field.type, operator, value, now=self.now))

    def age(self, operator: str, value) -> Q:
        known = Q(birth_date__isnull=False)
        if operator == "has_any_value":
            return known
        today = self.now.astimezone(dt.UTC).date()
        parts = []
        for low, high in V.age_ranges(operator, value):
            q = known
            if low is not None:
                q &= _age_at_least(low, today)
            if high is not None:
                q &= ~_age_at_least(high + 1, today)
            parts.append(q)
        return reduce(op.or_, parts) if parts else ~TRUE_Q

    def tags(self, operator: str, value) -> Q:
        through = Customer.tags.through
        tagged = through.objects.all()
        if self.customer_ids is not None:
            tagged = tagged.filter(customer_id__in=self.customer_ids)
        rows = tagged.annotate(lname=Lower("tag__name"))
        if operator == "has_any_value":
            return Q(pk__in=tagged.values("customer_id"))
        if operator == "is_any_of":
            rows = rows.filter(lname__in=[fold(v) for v in value])
        elif operator == "contains":
            rows = rows.filter(lname=fold(value))
        else:
            rows = rows.filter(Q(LIKE[operator](F("lname"), fold(value))))
        return Q(pk__in=rows.values("customer_id"))

    def event_attribute(self, key: str, operator: str, value) -> Q | Grouped:
        events = self.events().filter(timestamp__lte=self.now)
        set_key = ("attribute", "*" if key == "event_count" else ORDER_EVENT)
        if key != "event_count":
            events = events.filter(name=ORDER_EVENT)
        if key == "last_order_at":
            if operator == "has_any_value":
                return Q(pk__in=events.values("customer_id"))
            bounds = V.datetime_bounds(operator, value, now=self.now)
            return Grouped(set_key, events, Max("timestamp"), lambda e: bounds_q(e, bounds))
        if operator == "has_any_value":
            return TRUE_Q
        if key == "total_spent":
            return total(events, sum_expr(event_number(*REVENUE_PATH)), operator, value, set_key=set_key)
        return total(events, Count("*"), operator, value, set_key=set_key, integer=True)

    # -- events -------------------------------------------------------------------------------
    def event_filter(self, node: dict) -> Q:
        q = Q(name=node["event"], timestamp__lte=self.now)
        if "within" in node:
            q &= bounds_q(F("timestamp"), V.window_bounds(node["within"], now=self.now))
        for item in node.get("where", []):
            q &= self.property_filter(item)
        return q

    def property_filter(self, item: dict) -> Q:
        operator, value = item["operator"], item.get("value")
        if operator in NEGATED:
            return ~self.property_positive(item["property"], NEGATED[operator], value)
        return self.property_positive(item["property"], operator, value)

    def property_positive(self, path: str, operator: str, value) -> Q:
        column, *keys = path.split(".")
        if operator == "is_any_of":
            return reduce(op.or_, [self.property_positive(path, "is", item) for item in value])
        if operator == "has_any_value":
            return json_known(column, keys)
        if operator == "is" and isinstance(value, bool):
            return Q(Exact(JsonKind(column, keys), "true" if value else "false"))
        if isinstance(value, str):
            return text_test(JsonText(column, keys), operator, value)
        return number_test(event_number(column, *keys), operator, value)

    def event(self, node: dict) -> Q | Grouped:
        events = self.events().filter(self.event_filter(node))
        for key, negated in (("followed_by", False), ("not_followed_by", True)):
            if key in node:
                later = Exists(Event.objects.filter(self.follower_filter(node[key])))
                events = events.filter(~Q(later) if negated else Q(later))
        # Conditions over the same matching events (name, where, window, sequence) can share one
        # grouped subquery; the aggregate is part of the key only when it narrows the events.
        set_key = (
            "event",
            json.dumps({k: v for k, v in node.items() if k not in ("count", "aggregate")}, sort_keys=True),
        )
        if "count" in node:
            return total(
                events, Count("*"), node["count"]["operator"], node["count"]["value"], set_key=set_key, integer=True
            )
        if "aggregate" in node:
            return self.aggregate(events, node["aggregate"], set_key)
        return Q(pk__in=events.values("customer_id"))

    def follower_filter(self, follower: dict) -> Q:
        q = self.event_filter({"event": follower["event"], "where": follower.get("where", [])})
        later = (
            Q(timestamp__gt=OuterRef("timestamp"))
            | Q(timestamp=OuterRef("timestamp"), received_at__gt=OuterRef("received_at"))
            | Q(timestamp=OuterRef("timestamp"), received_at=OuterRef("received_at"), pk__gt=OuterRef("pk"))
        )
        return q & Q(customer_id=OuterRef("customer_id")) & later

    def aggregate(self, events, spec: dict, set_key: tuple) -> Q | Grouped:
        number = event_number(*spec["property"].split("."))
        events = events.filter(IsNull(number, False))
        set_key = (*set_key, spec["property"])
        function, operator, value = spec["function"], spec["operator"], spec["value"]
        if function == "sum":
            return total(events, sum_expr(number), operator, value, set_key=set_key)
        agg = {
            "avg": lambda: Round(Avg(number, output_field=FloatField()), 6),
            "min": lambda: Min(number),
            "max": lambda: Max(number),
        }[function]()
        return Grouped(set_key, events, agg, lambda e: num_predicate(e, operator, value))


# ------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------
def text_test(expr, operator: str, value) -> Q:
    """A positive text operator on a possibly-NULL text expression; NULL never matches."""
    text = Coalesce(Lower(expr), Value(""), output_field=TextField())
    if operator == "has_any_value":
        return Q(IsNull(expr, False)) & ~Q(Exact(expr, ""))
    if operator == "is":
        return Q(Exact(text, fold(value)))
    if operator in LIKE:
        return Q(LIKE[operator](text, fold(value)))
    raise ValueError(f"operator {operator!r} does not apply to text")


def event_number(column: str, *keys: str):
    """An event field as a number (JSON number or numeric string, else NULL). `properties.revenue`
    is the stored `Event.revenue` (the same expression, computed on write), which the
    (name, timestamp, customer) index covers on PostgreSQL."""
    if (column, *keys) == REVENUE_PATH:
        return F("revenue")
    return JsonNumber(column, keys, strings=True)


def number_test(expr, operator: str, value) -> Q:
    if operator == "has_any_value":
        return Q(IsNull(expr, False))
    return Q(IsNull(expr, False)) & num_predicate(expr, operator, value)


def num_predicate(expr, operator: str, value, *, integer: bool = False) -> Q:
    """A NUM_OP comparison on a non-NULL numeric expression.

    `integer`: the expression is an integer count; integer condition values are then compared as
    integers, which spares a numeric cast per group on PostgreSQL (same result on both databases).
    """

    def lit(v):
        if integer and isinstance(v, int) and not isinstance(v, bool):
            return Value(v, output_field=IntegerField())
        return NumberLiteral(v)

    if operator == "between":
        return Q(GreaterThanOrEqual(expr, lit(value[0]))) & Q(LessThanOrEqual(expr, lit(value[1])))
    if operator == "is":
        return Q(Exact(expr, lit(value)))
    if operator == "is_not":
        return ~Q(Exact(expr, lit(value)))
    if operator in CMP:
        return Q(CMP[operator](expr, lit(value)))
    raise ValueError(f"operator {operator!r} does not apply to numbers")


def bounds_q(expr, bounds) -> Q:
    low, low_inc, high, high_inc = bounds
    q = Q()  # not TRUE_Q: `id IS NOT NULL` on events would defeat index-only scans
    if low is not None:
        q &= Q((GreaterThanOrEqual if low_inc else GreaterThan)(expr, low))
    if high is not None:
        q &= Q((LessThanOrEqual if high_inc else LessThan)(expr, high))
    return q


def json_known(column: str, keys) -> Q:
    """Known = present, not null, not an empty string, not an empty array."""
    kind = JsonKind(column, keys)
    empty_text = Q(Exact(kind, "string")) & Q(Exact(JsonText(column, keys), ""))
    empty_array = Q(Exact(kind, "array")) & Q(Exact(JsonRaw(column, keys), "[]"))
    return ~Q(Exact(kind, "missing")) & ~Q(Exact(kind, "null")) & ~empty_text & ~empty_array


def sum_expr(number):
    return Round(Coalesce(Sum(number, output_field=FloatField()), NumberLiteral(0), output_field=FloatField()), 6)


class Grouped:
    """Customers whose matching events' aggregate satisfies a predicate (false without events).

    `key` identifies the event set (the events queryset's filter); conditions with the same key
    in one group are merged by `_merge_grouped` into ONE grouped subquery computing each
    aggregate once (e.g. `orders_count at_least 5` and `last_order_at less_than_days_ago 90`:
    one scan of the orders, `HAVING count(*) >= 5 AND max(timestamp) > ...`).
    """

    def __init__(self, key: tuple, events, agg, predicate):
        self.key = key
        self.events = events
        # agg None: "performed at least once", true for every group of a grouped subquery
        self.parts = [] if agg is None else [(agg, predicate)]
        self.performed = agg is None

    def merge(self, other: Grouped) -> None:
        self.parts.extend(other.parts)
        self.performed = self.performed or other.performed

    def q(self, combine=op.and_) -> Q:
        if not self.parts or (self.performed and combine is op.or_):
            return Q(pk__in=self.events.values("customer_id"))
        annotations = {f"agg_{i}": agg for i, (agg, _) in enumerate(self.parts)}
        having = reduce(combine, [predicate(F(f"agg_{i}")) for i, (_, predicate) in enumerate(self.parts)])
        rows = self.events.order_by().values("customer_id").annotate(**annotations).filter(having)
        return Q(pk__in=rows.values("customer_id"))


def as_q(part: Q | Grouped) -> Q:
    return part.q() if isinstance(part, Grouped) else part


def _merge_grouped(parts: list, combine) -> list[Q]:
    """Merge Grouped parts with the same event set. Sound for AND and OR alike: every part is
    false for customers without matching events, so `pk IN (... HAVING a) op pk IN (... HAVING b)`
    is `pk IN (... HAVING a op b)`."""
    merged: dict[tuple, Grouped] = {}
    out: list = []
    for part in parts:
        if isinstance(part, Grouped):
            if part.key in merged:
                merged[part.key].merge(part)
                continue
            merged[part.key] = part
        out.append(part)
    return [part.q(combine) if isinstance(part, Grouped) else part for part in out]


def total(events, agg, operator: str, value, *, set_key: tuple = (), integer: bool = False) -> Q | Grouped:
    """A NUM_OP on a count or sum that is 0 for customers without matching events (decisions 2)."""
    if not V.compare(operator, V.to_number(0), value):
        if integer and operator in ("at_least", "more_than") and V.compare(operator, V.to_number(1), value):
            # "at least once": alone a semi-join, no grouping (PostgreSQL may probe the index per
            # customer); merged with a sibling over the same events it adds nothing to an AND
            return Grouped(set_key, events, None, None)
        return Grouped(set_key, events, agg, lambda e: num_predicate(e, operator, value, integer=integer))
    if integer and operator != "is_not" and not V.compare(operator, V.to_number(1), value):
        # A count range holding 0 but not 1 holds for exactly the customers without matching
        # events ("did not perform"): NOT EXISTS, which PostgreSQL runs as one hash anti-join
        # instead of a correlated count per customer.
        return ~Q(Exists(events.filter(customer_id=OuterRef("pk"))))
    per_customer = (
        events.filter(customer_id=OuterRef("pk")).order_by().values("customer_id").annotate(agg_value=agg)
    ).values("agg_value")
    zero = Value(0, output_field=IntegerField()) if integer else NumberLiteral(0)
    value_expr = Coalesce(Subquery(per_customer), zero, output_field=IntegerField() if integer else FloatField())
    return num_predicate(value_expr, operator, value, integer=integer)


def _age_at_least(years: int, today: dt.date) -> Q:
    bound = V.age_at_least_bound(years, today)
    if bound is True:
        return TRUE_Q
    if bound is False:
        return ~TRUE_Q
    return Q(birth_date__lte=bound)
