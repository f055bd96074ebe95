"""Bulk tagging: add or remove one tag on many profiles as set-based statements.

The admin's "add/remove a tag" actions may cover every customer of a filtered list
(`select_across`), so the work is done in chunks of ids with one INSERT, DELETE and UPDATE per
chunk, never one statement per customer. One transaction holds the whole change; segments that
use tags re-evaluate the changed profiles after commit (`profile_changed`).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from customers.models import Customer, Tag
from customers.signals import profile_changed_send

from .profiles import tags_get_or_create

# 5,000 ids keep each statement's parameter list well under SQLite's 32,766 limit.
CHUNK = 5_000


def _chunks(ids: QuerySet):
    chunk = []
    for pk in ids.iterator(chunk_size=CHUNK):
        chunk.append(pk)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _touch(ids: list[int], changed: list[int]) -> None:
    Customer.objects.filter(pk__in=ids).update(updated_at=timezone.now())
    changed.extend(ids)


def customers_tag_add(*, customers: QuerySet, name: str) -> list[int]:
    """Give `name` (created when missing, case-insensitive) to every profile of `customers`.

    Returns the ids of the profiles that did not have it yet, in id order.
    """
    through = Customer.tags.through
    changed: list[int] = []
    with transaction.atomic():
        (tag,) = tags_get_or_create([name])
        missing = customers.exclude(tags=tag).order_by("pk").values_list("pk", flat=True).distinct()
        for chunk in _chunks(missing):
            # Locked first, and only profiles still there are linked: the link table has no
            # foreign keys, and an erasure waits on this lock (customer_erase).
            ids = list(
                Customer.objects.select_for_update().filter(pk__in=chunk).order_by("pk").values_list("pk", flat=True)
            )
            through.objects.bulk_create([through(customer_id=pk, tag_id=tag.pk) for pk in ids], ignore_conflicts=True)
            _touch(ids, changed)
        if changed:
            transaction.on_commit(lambda: profile_changed_send(changed, reason="profile_change"))
    return changed


def customers_tag_remove(*, customers: QuerySet, name: str) -> list[int]:
    """Take the tag `name` (case-insensitive) from every profile of `customers` that has it."""
    through = Customer.tags.through
    changed: list[int] = []
    with transaction.atomic():
        tag = Tag.objects.annotate(lname=Lower("name")).filter(lname=name.lower()).first()
        if tag is None:
            return changed
        having = customers.filter(tags=tag).order_by("pk").values_list("pk", flat=True).distinct()
        for ids in _chunks(having):
            through.objects.filter(tag_id=tag.pk, customer_id__in=ids).delete()
            _touch(ids, changed)
        if changed:
            transaction.on_commit(lambda: profile_changed_send(changed, reason="profile_change"))
    return changed
