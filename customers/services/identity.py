"""Identity: trait mapping shared with the CSV import, and profile merges (decisions 13-15).

`traits_split` is the one place that knows how Segment-style traits map onto profile
attributes. `customer_merge` folds one profile into another inside the caller's transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from customers.models import Customer, CustomerIdentity, Event
from customers.normalize import flatten

from .profiles import PROFILE_FIELDS, customer_apply_values

# Profile attribute -> trait paths, the first non-null one winning: snake_case beats camelCase,
# `address.*` beats top-level keys (decisions 15).
PROFILE_TRAITS = {
    "email": ("email",),
    "phone": ("phone",),
    "gender": ("gender",),
    "first_name": ("first_name", "firstName"),
    "last_name": ("last_name", "lastName"),
    "birth_date": ("birth_date", "birthday"),
    "country": ("address.country", "country"),
    "city": ("address.city", "city"),
    "language": ("language",),
    "source": ("source",),
}
_MAPPED_PATHS = frozenset(path for paths in PROFILE_TRAITS.values() for path in paths)
_SCALARS = (str, int, float, bool)


class MergeConflict(Exception):
    """A profile to merge vanished under us (a concurrent merge); the caller retries."""


def traits_split(traits: dict) -> tuple[dict, dict]:
    """Split traits into (profile values, custom values), both still raw (not normalised).

    Nested objects become dotted custom keys, arrays stay lists (the `list` type), and a null
    trait is ignored, so it neither clears a value nor registers a type.
    """
    flat = flatten(traits or {})
    profile = {}
    for key, paths in PROFILE_TRAITS.items():
        for path in paths:
            value = flat.get(path)
            if value is not None and isinstance(value, _SCALARS):
                profile[key] = value
                break
    custom = {key: value for key, value in flat.items() if key not in _MAPPED_PATHS and value is not None}
    return profile, custom


def _ledger_on_merge(*, survivor_id: int, merged_id: int, now) -> None:
    """Memberships and ledger of the merged profile (decisions 13, 27 reason `merged`).

    The merged profile's ledger history moves to the survivor (nothing is lost). Each of its
    memberships gets an exit with reason `merged`; a membership the survivor lacked moves to
    the survivor with an entry, one it already had is dropped and the segment count falls.
    Per (segment, customer) the survivor's ledger therefore stays balanced.
    """
    from segmentation.models import LedgerEntry, Membership, Reason, Segment

    LedgerEntry.objects.filter(customer_id=merged_id).update(customer_id=survivor_id)
    memberships = list(Membership.objects.filter(customer_id=merged_id).values_list("pk", "segment_id"))
    if not memberships:
        return
    held = set(
        Membership.objects.filter(customer_id=survivor_id, segment_id__in=[seg for _, seg in memberships]).values_list(
            "segment_id", flat=True
        )
    )
    detail = {"merged_customer_id": merged_id}
    entries, moved, dropped = [], [], []
    for pk, segment_id in memberships:
        entries.append(
            LedgerEntry(
                segment_id=segment_id,
                customer_id=survivor_id,
                change=LedgerEntry.Change.EXITED,
                at=now,
                reason=Reason.MERGED,
                detail=detail,
            )
        )
        if segment_id in held:
            dropped.append((pk, segment_id))
        else:
            moved.append(pk)
            entries.append(
                LedgerEntry(
                    segment_id=segment_id,
                    customer_id=survivor_id,
                    change=LedgerEntry.Change.ENTERED,
                    at=now,
                    reason=Reason.MERGED,
                    detail=detail,
                )
            )
    Membership.objects.filter(pk__in=moved).update(customer_id=survivor_id)
    if dropped:
        Membership.objects.filter(pk__in=[pk for pk, _ in dropped]).delete()
        Segment.objects.filter(pk__in=[seg for _, seg in dropped], member_count__gt=0).update(
            member_count=F("member_count") - 1
        )
    LedgerEntry.objects.bulk_create(entries)


def customer_merge(*, survivor_id: int, merged_id: int) -> bool:
    """Merge profile `merged_id` into `survivor_id`; returns whether the survivor's values changed.

    Events, identities, tags, static memberships and ledger history move; attributes fill the
    survivor's gaps (its own values win); first/last seen widen; the merged profile is deleted.
    A merged profile that had an `external_id` (explicit alias) leaves it behind as an alias
    identity so the old id still resolves. Must run inside a transaction; `customers_merged` is
    sent after commit.
    """
    if survivor_id == merged_id:
        return False
    # Lock both rows in a fixed order so two merges touching the same pair cannot deadlock.
    rows = {
        c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[survivor_id, merged_id]).order_by("pk")
    }
    if len(rows) != 2:
        raise MergeConflict(f"customer {survivor_id} or {merged_id} no longer exists")
    survivor, merged = rows[survivor_id], rows[merged_id]

    Event.objects.filter(customer_id=merged_id).update(customer_id=survivor_id)
    CustomerIdentity.objects.filter(customer_id=merged_id).update(customer_id=survivor_id)
    if merged.external_id:
        CustomerIdentity.objects.get_or_create(
            kind=CustomerIdentity.Kind.ALIAS, value=merged.external_id, defaults={"customer_id": survivor_id}
        )
    changed = customer_apply_values(
        survivor,
        profile={key: getattr(merged, key) for key in PROFILE_FIELDS},
        custom=merged.custom or {},
        fill_only=True,
    )
    merged_tags = set(merged.tags.values_list("pk", flat=True))
    new_tags = merged_tags - set(survivor.tags.values_list("pk", flat=True))
    if new_tags:
        survivor.tags.add(*new_tags)
        survivor.updated_at = timezone.now()
        changed = True
    for attr, pick in (("first_seen_at", min), ("last_seen_at", max)):
        values = [v for v in (getattr(survivor, attr), getattr(merged, attr)) if v is not None]
        if values:
            setattr(survivor, attr, pick(values))
    _ledger_on_merge(survivor_id=survivor_id, merged_id=merged_id, now=timezone.now())
    merged.delete()
    survivor.save()

    from customers.signals import customers_merged

    transaction.on_commit(lambda: customers_merged.send(sender=Customer, survivor_id=survivor_id, merged_id=merged_id))
    return changed
