"""Reads for segments: lists, members, history, a customer's segments, dependency order."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from segmentation.models import LedgerEntry, Membership, Segment, Snapshot


def segment_list(*, kind: str | None = None, tag: str | None = None, search: str | None = None) -> QuerySet[Segment]:
    qs = Segment.objects.select_related("owner").prefetch_related("tags")
    if kind:
        qs = qs.filter(kind=kind)
    if tag:
        qs = qs.annotate(ltag=Lower("tags__name")).filter(ltag=tag.strip().lower()).distinct()
    if search:
        term = search.strip()
        qs = qs.filter(Q(name__icontains=term) | Q(key__icontains=term) | Q(description__icontains=term))
    return qs


def segment_get(*, key: str) -> Segment | None:
    """The segment with this key, ignoring case (keys are unique regardless of case)."""
    return Segment.objects.annotate(lkey=Lower("key")).filter(lkey=key.lower()).first()


def segment_members(*, segment: Segment) -> QuerySet[Membership]:
    return Membership.objects.filter(segment=segment).select_related("customer")


def segment_history(*, segment: Segment) -> QuerySet[Snapshot]:
    """Snapshots, newest first: size over time and entered/exited per recompute."""
    return Snapshot.objects.filter(segment=segment).order_by("-finished_at", "-id")


def segment_ledger(*, segment: Segment) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(segment=segment).select_related("customer").order_by("-at", "-id")


def customer_segments(customer) -> QuerySet[Membership]:
    """The customer's current memberships with their segments, newest first."""
    return Membership.objects.filter(customer=customer).select_related("segment").order_by("-entered_at", "-id")


def customer_ledger(customer) -> QuerySet[LedgerEntry]:
    """Every entry and exit of the customer, newest first, with the reason."""
    return LedgerEntry.objects.filter(customer=customer).select_related("segment").order_by("-at", "-id")


def segments_in_dependency_order(segments: list[Segment]) -> list[Segment]:
    """Referenced segments before the segments that refer to them (stable by key otherwise).

    Only references inside `segments` order them; cycles are refused on save, so any leftover
    (an impossible cycle in old data) is appended rather than dropped.
    """
    return [segment for level in segments_in_dependency_levels(segments) for segment in level]


def segments_in_dependency_levels(segments: list[Segment]) -> list[list[Segment]]:
    """`segments` in levels: each level refers only to segments of earlier levels (or outside
    `segments`), so the segments of one level can be recomputed in any order, or at once."""
    by_key = {s.key.lower(): s for s in segments}
    pending = {
        k: {d for d in (s.dependencies or {}).get("segments", []) if d in by_key and d != k} for k, s in by_key.items()
    }
    levels: list[list[Segment]] = []
    while pending:
        ready = sorted(k for k, deps in pending.items() if not deps)
        if not ready:
            ready = sorted(pending)
        levels.append([by_key[k] for k in ready])
        for k in ready:
            del pending[k]
        for deps in pending.values():
            deps.difference_update(ready)
    return levels
