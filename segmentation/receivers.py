"""Receivers: customer changes re-evaluate segments, migrations register the periodic tasks.

Work is enqueued after the sender's transaction commits, so a worker never reads data that
is not there yet; a broker hiccup is logged, not raised into the request (the sweeps catch up).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import transaction
from django.db.models import F

from segmentation.models import Membership, Reason, Segment

# Customer ids per task message: keeps messages small and lets several workers share a big import.
IDS_PER_TASK = 5_000


def _any_computed_dynamic() -> bool:
    return Segment.objects.filter(kind=Segment.Kind.DYNAMIC, computed_at__isnull=False).exists()


def _enqueue(customer_ids, reason: str, detail: dict | None = None, event_names=None) -> None:
    from segmentation.tasks import segment_recompute_customers_task

    ids = sorted({int(i) for i in customer_ids or [] if i is not None})
    if not ids or not _any_computed_dynamic():
        return
    names = sorted(set(event_names)) if event_names is not None else None

    def send():
        for start in range(0, len(ids), IDS_PER_TASK):
            segment_recompute_customers_task.delay(ids[start : start + IDS_PER_TASK], reason, detail, None, names)

    transaction.on_commit(send, robust=True)


def on_events_ingested(sender, customer_ids=None, event_names=None, **kwargs):
    _enqueue(customer_ids, Reason.EVENT, event_names=list(event_names or []))


def on_profile_changed(sender, customer_ids=None, reason=None, **kwargs):
    valid = {choice.value for choice in Reason}
    _enqueue(customer_ids, reason if reason in valid else Reason.PROFILE_CHANGE)


def on_customers_merged(sender, survivor_id=None, merged_id=None, **kwargs):
    _enqueue([survivor_id], Reason.MERGED, detail={"merged_id": merged_id})


def on_customer_deleted(sender, instance, **kwargs):
    """Erasures and merges delete memberships by cascade; keep the member counts current.

    Static and external segments are never recomputed, so nothing else would correct them.
    Runs in the deleting transaction, before the cascade.
    """
    segment_ids = Membership.objects.filter(customer_id=instance.pk).values("segment_id")
    Segment.objects.filter(pk__in=segment_ids, member_count__gt=0).update(member_count=F("member_count") - 1)


PERIODIC_TASKS = [
    # (name, task, kwargs, minutes)
    ("Segments: sweep time-dependent", "segmentation.segments_sweep", {"scope": "time"}, "TESSERA_SWEEP_TIME_MINUTES"),
    ("Segments: sweep all", "segmentation.segments_sweep", {"scope": "all"}, "TESSERA_SWEEP_ALL_MINUTES"),
    ("Segments: watchdog", "segmentation.segments_watchdog", {}, None),
]
WATCHDOG_MINUTES = 5


def periodic_tasks_register() -> None:
    """Create or refresh the beat schedule rows (django-celery-beat DatabaseScheduler); idempotent."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    defaults = {"TESSERA_SWEEP_TIME_MINUTES": 15, "TESSERA_SWEEP_ALL_MINUTES": 60}
    for name, task, kwargs, setting in PERIODIC_TASKS:
        minutes = getattr(settings, setting, defaults[setting]) if setting else WATCHDOG_MINUTES
        schedule, _ = IntervalSchedule.objects.get_or_create(
            every=max(int(minutes), 1), period=IntervalSchedule.MINUTES
        )
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": schedule, "kwargs": json.dumps(kwargs), "enabled": True}
        )


def after_migrate(sender, **kwargs):
    from segmentation.services import segments_sync_dependencies

    periodic_tasks_register()
    segments_sync_dependencies()
