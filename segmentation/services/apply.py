"""Applying a known membership difference for a bounded set of customers.

Used by incremental re-evaluation and by manual/API member changes; the caller holds the
segment's lock inside its transaction (decisions 27). Full recomputes use `sql.apply_staged`.
"""

from __future__ import annotations

import datetime as dt

from segmentation.models import LedgerEntry, Membership, Segment, Snapshot

CHUNK = 1_000


def membership_apply(
    *,
    segment: Segment,
    added: list[int],
    removed: list[int],
    reason: str,
    at: dt.datetime,
    detail: dict | None = None,
    details: dict[int, dict] | None = None,
    **segment_fields,
) -> Snapshot:
    """Insert `added`, delete `removed`, write their ledger rows and a snapshot; keep the count.

    `details` gives a per-customer ledger detail, `detail` the default one. Extra keyword
    arguments are saved on the segment too (e.g. status for static segments).
    """
    details = details or {}
    size = max(segment.member_count + len(added) - len(removed), 0)
    snapshot = Snapshot.objects.create(
        segment=segment,
        version=segment.applied_version,
        reason=reason,
        started_at=at,
        finished_at=at,
        size=size,
        entered=len(added),
        exited=len(removed),
    )
    Membership.objects.bulk_create(
        [Membership(segment=segment, customer_id=cid, entered_at=at) for cid in added],
        ignore_conflicts=True,
        batch_size=CHUNK,
    )
    for start in range(0, len(removed), CHUNK):
        Membership.objects.filter(segment=segment, customer_id__in=removed[start : start + CHUNK]).delete()
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                segment=segment,
                customer_id=cid,
                change=change,
                at=at,
                reason=reason,
                detail=details.get(cid, detail or {}),
                snapshot=snapshot,
            )
            for change, ids in ((LedgerEntry.Change.ENTERED, added), (LedgerEntry.Change.EXITED, removed))
            for cid in ids
        ],
        batch_size=CHUNK,
    )
    Segment.objects.filter(pk=segment.pk).update(member_count=size, **segment_fields)
    segment.member_count = size
    return snapshot
