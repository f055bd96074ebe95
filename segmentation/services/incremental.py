"""Incremental re-evaluation: a few customers against the segments that depend on what changed.

Events and profile changes arrive in small groups of customers. Instead of recomputing whole
segments, each batch of customers is checked against only the dynamic segments whose
dependencies match, with one query per batch and segment
(`Customer.objects.filter(pk__in=batch).filter(q)`), and the difference is applied under the
segment's lock, like a full run (decisions 27, 28).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from customers.models import Customer, Event
from segmentation.models import Membership, Reason, Segment
from segmentation.selectors import segments_in_dependency_order

from .apply import membership_apply

# Customers per query: 500 ids keep the IN list and the per-batch transaction short (a batch
# against the mixed 3-condition definition takes a few ms on PostgreSQL at a million profiles).
BATCH = 500
# System attributes that change only with events: a profile change cannot move them.
EVENT_ATTRIBUTES = {"event_count", "orders_count", "total_spent", "last_order_at"}
# ... and attributes that an event can move (tracking updates the seen times with each event).
EVENT_MOVED_ATTRIBUTES = EVENT_ATTRIBUTES | {"first_seen_at", "last_seen_at"}


def _matches(segment: Segment, *, reason: str, event_names) -> bool:
    deps = segment.dependencies or {}
    events, attributes = set(deps.get("events") or []), set(deps.get("attributes") or [])
    if not events and not attributes and not deps.get("segments"):
        # "Everyone"-like definitions: any new or changed profile may enter.
        return True
    if reason == Reason.MERGED:
        return True
    if event_names is not None:
        return bool(events & set(event_names)) or bool(attributes & EVENT_MOVED_ATTRIBUTES)
    return bool(attributes - EVENT_ATTRIBUTES)


def segments_affected(*, reason: str, event_names=None, segment_ids=None) -> list[Segment]:
    """Computed dynamic segments to re-check for this kind of change, in dependency order."""
    qs = Segment.objects.filter(kind=Segment.Kind.DYNAMIC, computed_at__isnull=False)
    if segment_ids is not None:
        return segments_in_dependency_order(list(qs.filter(pk__in=segment_ids)))
    return segments_in_dependency_order([s for s in qs if _matches(s, reason=reason, event_names=event_names)])


def _event_details(customer_ids, event_names, now) -> dict[int, dict]:
    """{customer id: {"event", "event_at"}} for the latest of `event_names` each customer performed."""
    rows = (
        Event.objects.filter(customer_id__in=customer_ids, name__in=event_names, timestamp__lte=now)
        .values("customer_id", "name")
        .annotate(at=Max("timestamp"))
        .order_by()
    )
    latest: dict[int, tuple] = {}
    for row in rows:
        if row["customer_id"] not in latest or row["at"] > latest[row["customer_id"]][1]:
            latest[row["customer_id"]] = (row["name"], row["at"])
    return {cid: {"event": name, "event_at": at.isoformat()} for cid, (name, at) in latest.items()}


def _apply_batch(segment: Segment, batch: list[int], *, reason, detail, event_names, now) -> list[int]:
    """Re-evaluate `batch` against `segment`; returns the ids whose membership changed."""
    from segmentation.engine import compile_definition

    with transaction.atomic():
        # Serialised with full runs and other batches of this segment (decisions 27).
        seg = Segment.objects.select_for_update().filter(pk=segment.pk).first()
        if seg is None or seg.kind != Segment.Kind.DYNAMIC or seg.computed_at is None:
            return []
        q = compile_definition(seg.definition, now=now, customer_ids=batch)
        matching = set(Customer.objects.filter(pk__in=batch).filter(q).values_list("pk", flat=True))
        current = set(
            Membership.objects.filter(segment=seg, customer_id__in=batch).values_list("customer_id", flat=True)
        )
        # Customers erased since the change was signalled are simply not found.
        existing = set(Customer.objects.filter(pk__in=batch).values_list("pk", flat=True))
        added, removed = sorted(matching - current), sorted((current - matching) & existing)
        if not added and not removed:
            return []
        details = _event_details(added + removed, event_names, now) if event_names else {}
        membership_apply(
            segment=seg, added=added, removed=removed, reason=reason, at=now, detail=detail, details=details
        )
    return added + removed


def segment_recompute_customers(
    *, customer_ids, reason: str, detail: dict | None = None, event_names=None, segment_ids=None, now=None
) -> dict:
    """Re-evaluate `customer_ids` against the dynamic segments that depend on what changed.

    `event_names` (events ingested) selects segments using those events or event-driven
    attributes; without it (profile change, import) segments using profile/custom attributes
    or tags; `merged` re-checks all; `segment_ids` forces a set (dependents). Changes cascade to
    the segments that refer to a changed one, for the changed customers (reason `dependency`).
    Returns {segment key: number of changed customers}.
    """
    now = now or timezone.now()
    ids = sorted({int(i) for i in customer_ids})
    changed_by_segment: dict[str, int] = {}
    if not ids:
        return changed_by_segment
    for segment in segments_affected(reason=reason, event_names=event_names, segment_ids=segment_ids):
        changed: list[int] = []
        for start in range(0, len(ids), BATCH):
            changed += _apply_batch(
                segment, ids[start : start + BATCH], reason=reason, detail=detail, event_names=event_names, now=now
            )
        if changed:
            changed_by_segment[segment.key] = len(changed)
            _cascade(segment, changed, now=now, into=changed_by_segment)
    return changed_by_segment


def _cascade(segment: Segment, changed: list[int], *, now, into: dict) -> None:
    from .segments import segment_dependents

    dependents = [d.pk for d in segment_dependents(key=segment.key, exclude_pk=segment.pk)]
    if dependents:
        into.update(
            segment_recompute_customers(
                customer_ids=changed,
                reason=Reason.DEPENDENCY,
                detail={"segment": segment.key},
                segment_ids=dependents,
                now=now,
            )
        )
