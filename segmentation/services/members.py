"""Members of static and external segments, added and removed by id (decisions 30, 31)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from customers.models import Customer, CustomerIdentity
from segmentation.models import Membership, Reason, Segment

from .apply import membership_apply
from .errors import SegmentConflict, SegmentInvalid

MAX_IDS = 10_000
CHUNK = 1_000


def customers_resolve(ids: list[str]) -> tuple[dict[str, int], list[str]]:
    """Map external ids (or `id:<pk>`, or an aliased previous user id) to customer pks.

    Returns ({given id: pk}, [unknown ids in the given order]). External ids are exact
    (decisions 17).
    """
    found: dict[str, int] = {}
    by_pk = {i: i[3:] for i in ids if i.startswith("id:")}
    pks = {int(v) for v in by_pk.values() if v.isdigit()}
    existing = set()
    for start in range(0, len(pks), CHUNK):
        chunk = list(pks)[start : start + CHUNK]
        existing |= set(Customer.objects.filter(pk__in=chunk).values_list("pk", flat=True))
    for given, raw in by_pk.items():
        if raw.isdigit() and int(raw) in existing:
            found[given] = int(raw)
    external = [i for i in ids if i not in by_pk]
    for start in range(0, len(external), CHUNK):
        chunk = external[start : start + CHUNK]
        found.update(Customer.objects.filter(external_id__in=chunk).values_list("external_id", "pk"))
        rest = [i for i in chunk if i not in found]
        if rest:
            found.update(
                CustomerIdentity.objects.filter(kind=CustomerIdentity.Kind.ALIAS, value__in=rest).values_list(
                    "value", "customer_id"
                )
            )
    return found, [i for i in ids if i not in found]


def _clean_ids(segment: Segment, external_ids) -> list[str]:
    if segment.kind == Segment.Kind.DYNAMIC:
        raise SegmentConflict("Members of an auto-update segment follow its definition; they cannot be edited.")
    if not isinstance(external_ids, list) or not external_ids:
        raise SegmentInvalid({"external_ids": "Send a non-empty list of external ids."})
    if len(external_ids) > MAX_IDS:
        raise SegmentInvalid({"external_ids": f"Send at most {MAX_IDS:,} ids per request."})
    clean = []
    for value in external_ids:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SegmentInvalid({"external_ids": "Each id must be a string."})
        value = str(value).strip()
        if value and value not in clean:
            clean.append(value)
    return clean


def _change(*, segment: Segment, external_ids, reason: str, add: bool, detail: dict | None, customer_ids=None) -> dict:
    if customer_ids is not None:
        # The admin picks customers by primary key; report missing ones as `id:<pk>`.
        ids = _clean_ids(segment, [f"id:{int(pk)}" for pk in customer_ids])
    else:
        ids = _clean_ids(segment, external_ids)
    found, unknown = customers_resolve(ids)
    wanted = sorted(set(found.values()))
    now = timezone.now()
    with transaction.atomic():
        seg = Segment.objects.select_for_update().get(pk=segment.pk)
        current = set()
        for start in range(0, len(wanted), CHUNK):
            current |= set(
                Membership.objects.filter(segment=seg, customer_id__in=wanted[start : start + CHUNK]).values_list(
                    "customer_id", flat=True
                )
            )
        changed = [cid for cid in wanted if (cid not in current) == add]
        if changed:
            membership_apply(
                segment=seg,
                added=changed if add else [],
                removed=[] if add else changed,
                reason=reason,
                at=now,
                detail=detail,
                status=Segment.Status.READY,
                computed_at=now,
                last_error="",
            )
            from .recompute import dependents_reevaluate

            dependents_reevaluate(segment=seg, customer_ids=changed)
    segment.refresh_from_db()
    key = "added" if add else "removed"
    return {key: len(changed), "unchanged": len(wanted) - len(changed), "unknown": unknown}


def segment_members_add(
    *, segment: Segment, external_ids=None, customer_ids=None, reason: str = Reason.API, detail: dict | None = None
) -> dict:
    """Add customers by external id (or `id:<pk>`), or by `customer_ids`, to a static or external segment.

    Answers {"added", "unchanged", "unknown": [ids not found]}; unknown ids are not remembered.
    Segments that refer to this one re-check the changed customers.
    """
    return _change(
        segment=segment, external_ids=external_ids, customer_ids=customer_ids, reason=reason, add=True, detail=detail
    )


def segment_members_remove(
    *, segment: Segment, external_ids=None, customer_ids=None, reason: str = Reason.API, detail: dict | None = None
) -> dict:
    """Remove customers by external id (or `customer_ids`); answers {"removed", "unchanged", "unknown"}."""
    return _change(
        segment=segment, external_ids=external_ids, customer_ids=customer_ids, reason=reason, add=False, detail=detail
    )
