"""Reads for the customers app: profiles with their system attributes, events, jobs, attributes.

System attributes (`event_count`, `orders_count`, `total_spent`, `last_order_at`) are derived from
the event table at read time with `timestamp <= now` (docs/decisions.md), each as a correlated
subquery so a page of 50 profiles costs one query instead of 50 (and joins don't multiply rows).
"""

from __future__ import annotations

import datetime as dt

from django.db.models import (
    BooleanField,
    Count,
    DecimalField,
    Exists,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Lower, Round
from django.utils import timezone

from customers.models import AttributeDefinition, Customer, CustomerIdentity, Event, Job
from customers.normalize import NUMERIC_RE

ORDER_EVENT = "Order Completed"
REVENUE_PROPERTY = "revenue"
MONEY = DecimalField(max_digits=40, decimal_places=6)


class JSONNumber(Func):
    """A JSON property as a decimal: a JSON number or a numeric string, else NULL (decisions 5).

    Written per database because a JSON `true` reads as 1 through SQLite's json_extract and
    PostgreSQL needs jsonb_typeof to tell numbers from strings.
    """

    output_field = DecimalField(max_digits=40, decimal_places=10)

    def __init__(self, field, key: str):
        super().__init__(field)
        self.key = key

    def as_postgresql(self, compiler, connection):
        col, params = compiler.compile(self.source_expressions[0])
        get, text = f"({col} -> %s)", f"({col} ->> %s)"
        sql = (
            f"(CASE WHEN jsonb_typeof{get} = 'number' THEN {text}::numeric "
            f"WHEN jsonb_typeof{get} = 'string' AND {text} ~ %s THEN {text}::numeric END)"
        )
        key = self.key
        return sql, (*params, key, *params, key, *params, key, *params, key, f"^{NUMERIC_RE.pattern}$", *params, key)

    def as_sqlite(self, compiler, connection):
        col, params = compiler.compile(self.source_expressions[0])
        path = '$."' + self.key.replace('"', '""') + '"'
        typ, val = f"json_type({col}, %s)", f"json_extract({col}, %s)"
        sql = (
            f"(CASE WHEN {typ} IN ('integer', 'real') THEN {val} "
            f"WHEN {typ} = 'text' AND {val} REGEXP %s THEN CAST({val} AS NUMERIC) END)"
        )
        p = (*params, path)
        return sql, (*p, *p, *p, *p, f"^{NUMERIC_RE.pattern}$", *p)


class JSONListHasText(Func):
    """True when the JSON list at `key` holds a text item equal to `text` ignoring case (decisions 3).

    `text` must already be folded (customers.normalize.fold). Per database because SQLite has no
    JSON containment; both read the items through the same `lower()` (Python's on SQLite).
    """

    output_field = BooleanField()
    conditional = True

    def __init__(self, field, key: str, text: str):
        super().__init__(field)
        self.key, self.text = key, text

    def as_postgresql(self, compiler, connection):
        col, params = compiler.compile(self.source_expressions[0])
        sql = (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({col} -> %s) = 'array' "
            f"THEN {col} -> %s ELSE '[]'::jsonb END) AS item "
            "WHERE jsonb_typeof(item) = 'string' AND lower(item #>> '{}') = %s)"
        )
        return sql, (*params, self.key, *params, self.key, self.text)

    def as_sqlite(self, compiler, connection):
        col, params = compiler.compile(self.source_expressions[0])
        path = '$."' + self.key.replace('"', '""') + '"'
        sql = (
            f"EXISTS (SELECT 1 FROM json_each({col}, %s) AS item "
            "WHERE json_type(" + col + ", %s) = 'array' AND item.type = 'text' AND lower(item.value) = %s)"
        )
        return sql, (*params, path, *params, path, self.text)


def _event_aggregate(aggregate, *, now: dt.datetime, name: str | None = None) -> Subquery:
    events = Event.objects.filter(customer=OuterRef("pk"), timestamp__lte=now)
    if name is not None:
        events = events.filter(name=name)
    return Subquery(events.order_by().values("customer").annotate(v=aggregate).values("v")[:1])


def customer_system_annotations(*, now: dt.datetime | None = None) -> dict:
    """Annotations for the read-only system attributes; counts and sums are 0 without events."""
    now = now or timezone.now()
    revenue = Sum(JSONNumber("properties", REVENUE_PROPERTY))
    return {
        "event_count": Coalesce(_event_aggregate(Count("id"), now=now), 0, output_field=IntegerField()),
        "orders_count": Coalesce(
            _event_aggregate(Count("id"), now=now, name=ORDER_EVENT), 0, output_field=IntegerField()
        ),
        # Rounded to 6 places so both databases agree on 0.1 + 0.2 (decisions 4).
        "total_spent": Round(
            Coalesce(_event_aggregate(revenue, now=now, name=ORDER_EVENT), Value(0), output_field=MONEY),
            6,
            output_field=MONEY,
        ),
        "last_order_at": _event_aggregate(Max("timestamp"), now=now, name=ORDER_EVENT),
    }


def customer_list(*, now: dt.datetime | None = None) -> QuerySet[Customer]:
    """Profiles with system attributes annotated and tags / anonymous ids prefetched."""
    anonymous = CustomerIdentity.objects.filter(kind=CustomerIdentity.Kind.ANONYMOUS).order_by("id")
    return (
        Customer.objects.annotate(**customer_system_annotations(now=now))
        .prefetch_related("tags", Prefetch("identities", queryset=anonymous, to_attr="anonymous_identities"))
        .order_by("id")
    )


MAX_ID_DIGITS = 18  # anything longer overflows a bigint and can name no row


def is_row_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS


def customer_lookup_q(lookup: str) -> dict:
    """Filter kwargs for an API lookup: an exact external id, or `id:<id>` (decisions 17).

    A lookup no profile can have (NUL characters, an id beyond bigint) matches nothing instead of
    reaching the database, where PostgreSQL would reject it.
    """
    if lookup.startswith("id:") and lookup[3:].isascii() and lookup[3:].isdigit():
        return {"pk": int(lookup[3:])} if is_row_id(lookup[3:]) else {"pk__in": []}
    if "\x00" in lookup:
        return {"pk__in": []}
    return {"external_id": lookup}


def customer_get(*, lookup: str, queryset: QuerySet[Customer] | None = None) -> Customer:
    """The profile an API lookup names; raises Customer.DoesNotExist."""
    queryset = Customer.objects.all() if queryset is None else queryset
    return queryset.get(**customer_lookup_q(lookup))


def customer_with_tag_q(name: str) -> Exists:
    return Exists(Customer.tags.through.objects.annotate(n=Lower("tag__name")).filter(customer=OuterRef("pk"), n=name))


def customer_in_segment_q(key: str) -> Exists:
    from segmentation.models import Membership

    memberships = Membership.objects.annotate(k=Lower("segment__key")).filter(customer=OuterRef("pk"), k=key)
    return Exists(memberships)


def event_list() -> QuerySet[Event]:
    """Events newest first with their customer's public id at hand."""
    return Event.objects.select_related("customer").order_by("-timestamp", "-id")


def customer_memberships(*, customer: Customer) -> QuerySet:
    """Current memberships of one profile (segmentation owns the rules; this is its read)."""
    from segmentation.selectors import customer_segments

    return customer_segments(customer)


def customer_ledger(*, customer: Customer) -> QuerySet:
    """Entered / exited history of one profile with reasons, newest first."""
    from segmentation.selectors import customer_ledger as ledger

    return ledger(customer)


def job_list(*, user) -> QuerySet[Job]:
    """Jobs a user may see: staff with `view_job` see all, everyone else their own."""
    jobs = Job.objects.all()
    if user.is_staff and user.has_perm("customers.view_job"):
        return jobs
    return jobs.filter(created_by=user)


def attribute_list() -> QuerySet[AttributeDefinition]:
    return AttributeDefinition.objects.all()


def _names_attribute(node, key: str) -> bool:
    if isinstance(node, dict):
        if node.get("attribute") == key:
            return True
        return any(_names_attribute(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_names_attribute(v, key) for v in node)
    return False


def attribute_used_by(*, key: str) -> list[str]:
    """Keys of the segments whose definition names the attribute (so it cannot be deleted).

    Reads the classified dependencies and also scans the definitions, so a segment saved before
    its dependencies were classified still counts.
    """
    from segmentation.models import Segment

    used = []
    for seg_key, definition, deps in Segment.objects.values_list("key", "definition", "dependencies"):
        names = set((deps or {}).get("attributes") or [])
        if key in names or _names_attribute(definition, key):
            used.append(seg_key)
    return sorted(used)
