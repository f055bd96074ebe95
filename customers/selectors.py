"""Reads for the customers app: profiles with their system attributes, events, jobs, attributes.

System attributes (`event_count`, `orders_count`, `total_spent`, `last_order_at`) are derived from
the event table at read time with `timestamp <= now` (docs/decisions.md), each as a correlated
subquery so a page of 50 profiles costs one query instead of 50 (and joins don't multiply rows).
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    FloatField,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from customers.models import AttributeDefinition, Customer, CustomerIdentity, Event, Job, Tag

ORDER_EVENT = "Order Completed"
REVENUE_PROPERTY = "revenue"


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
    # The segment engine's own expressions, so `total_spent` here is exactly what a condition
    # on it compares (JSON number or numeric string, rounded to 6 places: decisions 4, 5).
    from segmentation.engine.compiler import sum_expr
    from segmentation.engine.expressions import JsonNumber

    now = now or timezone.now()
    return {
        "event_count": Coalesce(_event_aggregate(Count("id"), now=now), 0, output_field=IntegerField()),
        "orders_count": Coalesce(
            _event_aggregate(Count("id"), now=now, name=ORDER_EVENT), 0, output_field=IntegerField()
        ),
        "total_spent": Coalesce(
            _event_aggregate(
                sum_expr(JsonNumber("properties", [REVENUE_PROPERTY], strings=True)), now=now, name=ORDER_EVENT
            ),
            Value(0.0),
            output_field=FloatField(),
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


def customer_countries() -> list[str]:
    """The distinct countries profiles have, read from the country index one value at a time.

    A skip scan written as a recursive query (neither database does it on its own): a few hundred
    index probes instead of reading every profile, which at a million profiles is the difference
    between 2 ms and 60 ms on every page of the customer list.
    """
    table = Customer._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE c(code) AS (SELECT min(country) FROM {table} UNION ALL "
            f"SELECT (SELECT min(country) FROM {table} WHERE country > c.code) FROM c WHERE c.code IS NOT NULL) "
            "SELECT code FROM c WHERE code IS NOT NULL"
        )
        return [code for (code,) in cursor.fetchall()]


def tags_with_customers() -> QuerySet[Tag]:
    """Tags at least one profile has: one probe of the links' (tag, customer) index per tag."""
    return Tag.objects.filter(Exists(Customer.tags.through.objects.filter(tag_id=OuterRef("pk"))))


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
