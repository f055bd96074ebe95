"""Re-coerce stored custom values after an attribute's type changed (decisions 11).

Runs in a background job (customers.tasks.attribute_recoerce_task). Values are converted with
the same rule as every input (customers.normalize.coerce); a value that does not fit the new
type becomes unknown (the key is removed) and is counted. Dynamic segments whose definitions
no longer validate against the new registry are marked `failed`.
"""

from __future__ import annotations

import json

from django.db import transaction
from django.utils import timezone

from customers.models import AttributeDefinition, Customer, Job
from customers.normalize import NormalizationError, coerce

from .imports import profile_changed_send

# Rows per transaction: each batch locks its rows briefly (select_for_update) so tracking writes
# to other keys of the same profiles are not lost between read and write.
BATCH = 2_000


def attribute_recoerce(*, attribute_id: int) -> Job | None:
    """Convert every stored value of one custom attribute to its registered type.

    Returns the Job (kind "attribute_recoerce") holding the counts, or None when the attribute
    no longer exists or is not custom.
    """
    attribute = AttributeDefinition.objects.filter(pk=attribute_id, kind=AttributeDefinition.Kind.CUSTOM).first()
    if attribute is None:
        return None
    key, type_ = attribute.custom_key, attribute.type
    job = Job.objects.create(
        kind="attribute_recoerce",
        status=Job.Status.RUNNING,
        started_at=timezone.now(),
        params={"attribute_id": attribute_id, "key": attribute.key, "type": type_},
        total=Customer.objects.filter(custom__has_key=key).count(),
    )
    counts = {"converted": 0, "unknown": 0, "unchanged": 0}
    touched: list[int] = []
    last_pk = 0
    try:
        while True:
            with transaction.atomic():
                rows = list(
                    Customer.objects.select_for_update()
                    .filter(pk__gt=last_pk, custom__has_key=key)
                    .order_by("pk")
                    .only("pk", "custom")[:BATCH]
                )
                if not rows:
                    break
                last_pk = rows[-1].pk
                now = timezone.now()
                changed = [c for c in rows if _recoerce_one(c, key, type_, counts)]
                for customer in changed:
                    customer.updated_at = now
                Customer.objects.bulk_update(changed, ["custom", "updated_at"])
                touched.extend(c.pk for c in changed)
            Job.objects.filter(pk=job.pk).update(progress=sum(counts.values()))
        failed = _fail_invalid_segments(attribute.key, type_)
    except Exception as exc:
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            result=counts,
            errors=[{"message": f"Re-coercion stopped: {exc}"}],
        )
        raise
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED,
        finished_at=timezone.now(),
        progress=sum(counts.values()),
        result={**counts, "failed_segments": failed},
    )
    transaction.on_commit(lambda: profile_changed_send(touched, reason="profile_change"))
    job.refresh_from_db()
    return job


def _recoerce_one(customer: Customer, key: str, type_: str, counts: dict) -> bool:
    """Convert one stored value in place; returns whether it changed."""
    old = customer.custom.get(key)
    try:
        new = coerce(old, type_)
    except NormalizationError:
        new = None
    if new is not None and type(new) is type(old) and new == old:
        counts["unchanged"] += 1
        return False
    if new is None:
        del customer.custom[key]
        counts["unknown"] += 1
    else:
        customer.custom[key] = new
        counts["converted"] += 1
    return True


def _fail_invalid_segments(attribute_key: str, type_: str) -> list[str]:
    """Mark dynamic segments naming the attribute `failed` when their definition no longer validates."""
    from segmentation.engine import validate_definition
    from segmentation.models import Segment

    failed = []
    needle = json.dumps(attribute_key)
    candidates = Segment.objects.filter(kind=Segment.Kind.DYNAMIC).exclude(status=Segment.Status.FAILED)
    for segment in candidates.only("pk", "key", "definition"):
        if needle not in json.dumps(segment.definition):
            continue
        problems = validate_definition(segment.definition)
        if not problems:
            continue
        message = f"{attribute_key} is now {type_}: {problems[0]['message']}"
        Segment.objects.filter(pk=segment.pk).update(status=Segment.Status.FAILED, last_error=message)
        failed.append(segment.key)
    return failed
