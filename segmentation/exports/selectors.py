"""Reads for exports: the columns an export may name, preview counts, runs and the mandatory filter."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from customers.attributes import PROFILE_ATTRIBUTES
from customers.models import AttributeDefinition, Customer
from segmentation.engine import compile_definition
from segmentation.models import Export, ExportRun, Membership, Segment

PROFILE_FIELDS = tuple(key for key, *_ in PROFILE_ATTRIBUTES)
STORED_DATETIMES = ("created_at", "updated_at", "first_seen_at", "last_seen_at")
# Computed from events at run time (customers.attributes.SYSTEM_ATTRIBUTES).
COMPUTED = {
    "event_count": "number",
    "orders_count": "number",
    "total_spent": "number",
    "last_order_at": "datetime",
    "age": "number",
}
SPECIAL = {"tags": "list", "entered_at": "datetime"}
ORDER_EVENT = "Order Completed"


@dataclass(frozen=True)
class Column:
    key: str
    type: str
    # field (a Customer column), custom (custom.<key>), computed, tags, entered_at, change
    source: str

    @property
    def custom_key(self) -> str:
        return self.key[len("custom.") :]


def export_available_columns() -> list[Column]:
    """Every column an export may contain, in the registry's order."""
    types = dict(AttributeDefinition.objects.values_list("key", "type"))
    out = [Column(key, "date" if key == "birth_date" else "string", "field") for key in PROFILE_FIELDS]
    out += [Column(key, "datetime", "field") for key in STORED_DATETIMES]
    out += [Column(key, type_, "computed") for key, type_ in COMPUTED.items()]
    out += [Column("tags", "list", "tags"), Column("entered_at", "datetime", "entered_at")]
    out += [Column(k, t, "custom") for k, t in sorted(types.items()) if k.startswith("custom.")]
    return out


def export_columns(*, export: Export) -> list[Column]:
    """The export's columns in file order; a delta export ends with `change` (decisions 40).

    A custom attribute that is no longer registered is exported as text.
    """
    available = {c.key: c for c in export_available_columns()}
    cols = []
    for key in export.columns:
        if key in available:
            cols.append(available[key])
        elif key.startswith("custom."):
            cols.append(Column(key, "string", "custom"))
        else:
            raise ValueError(f"Unknown column {key!r}.")
    if export.mode == Export.Mode.DELTA:
        cols.append(Column("change", "string", "change"))
    return cols


def mandatory_q(*, keys: list[str], now=None) -> Q:
    """Customers that have every mandatory attribute: the complement of `is_unknown` (decisions 43).

    Compiled by the segment engine from a synthetic `has_any_value` definition so the semantics are
    exactly the segment builder's.
    """
    if not keys:
        return Q()
    definition = {"match": "all", "conditions": [{"attribute": k, "operator": "has_any_value"} for k in keys]}
    return compile_definition(definition, now=now or timezone.now())


def mandatory_expression(*, keys: list[str], now=None):
    """A boolean expression over Membership rows: the member has every mandatory attribute."""
    return Exists(Customer.objects.filter(mandatory_q(keys=keys, now=now), pk=OuterRef("customer_id")))


def export_preview_counts(*, segment: Segment, mandatory: list[str], now=None) -> dict:
    """{"total": members, "exported": members with every mandatory attribute, "sentence": ...}."""
    members = Membership.objects.filter(segment=segment)
    total = members.count()
    if mandatory:
        exported = members.filter(customer__in=Customer.objects.filter(mandatory_q(keys=mandatory, now=now))).count()
        sentence = f"{exported} of {total} customers have every mandatory attribute"
    else:
        exported = total
        sentence = f"{total} customers will be exported (no mandatory attributes)"
    return {"total": total, "exported": exported, "sentence": sentence}


def export_list(*, user=None) -> QuerySet[Export]:
    return Export.objects.select_related("segment", "owner", "periodic_task")


def export_run_list(*, export: Export) -> QuerySet[ExportRun]:
    return export.runs.select_related("job")


def export_active_run(*, export: Export) -> ExportRun | None:
    return export.runs.filter(status__in=[ExportRun.Status.QUEUED, ExportRun.Status.RUNNING]).first()


def export_last_success(*, export: Export, before: ExportRun | None = None) -> ExportRun | None:
    qs = export.runs.filter(status=ExportRun.Status.SUCCEEDED)
    if before is not None:
        qs = qs.exclude(pk=before.pk)
    return qs.order_by("-finished_at", "-id").first()
