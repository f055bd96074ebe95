"""Celery tasks for segments: thin wrappers that load ids and call one service (style 8, 13).

Arguments are JSON (ids, versions, reasons). Recompute failures retry with exponential backoff
from 30 s, at most 5 times (decisions 29); the segment is marked `failed` meanwhile.
"""

from celery import shared_task

from segmentation.services.jobs import job_finish, job_start

RETRY_BACKOFF = 30
MAX_RETRIES = 5


@shared_task(bind=True, name="segmentation.segment_recompute", max_retries=MAX_RETRIES, acks_late=True)
def segment_recompute_task(self, segment_id: int, version: int, reason: str = "scheduled", job_id: int | None = None):
    from segmentation.services import segment_recompute

    job_start(job_id)
    try:
        result = segment_recompute(segment_id=segment_id, version=version, reason=reason)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            job_finish(job_id, result={"segment_id": segment_id}, errors=[{"message": str(exc)}])
            raise
        raise self.retry(exc=exc, countdown=RETRY_BACKOFF * 2**self.request.retries)
    job_finish(job_id, result=result)
    return result


@shared_task(bind=True, name="segmentation.segment_recompute_customers", max_retries=MAX_RETRIES, acks_late=True)
def segment_recompute_customers_task(
    self, customer_ids: list, reason: str, detail: dict | None = None, segment_ids: list | None = None, event_names=None
):
    from segmentation.services import segment_recompute_customers

    try:
        return segment_recompute_customers(
            customer_ids=customer_ids, reason=reason, detail=detail, segment_ids=segment_ids, event_names=event_names
        )
    except Exception as exc:
        raise self.retry(exc=exc, countdown=RETRY_BACKOFF * 2**self.request.retries)


@shared_task(name="segmentation.segments_sweep")
def segments_sweep_task(scope: str = "all"):
    from segmentation.services import segments_sweep
    from segmentation.services.jobs import job_create

    job = job_create(params={"sweep": scope})
    return {"applied": segments_sweep(scope=scope, job_id=job.pk)["applied"]}


@shared_task(name="segmentation.segments_watchdog")
def segments_watchdog_task():
    from segmentation.services import members_jobs_reap, segments_watchdog

    return {"requeued": segments_watchdog(), "reaped_jobs": members_jobs_reap()}


@shared_task(name="segmentation.segments_recompute_all")
def segments_recompute_all_task(job_id: int | None = None, keys: list | None = None):
    from segmentation.models import Segment
    from segmentation.selectors import segment_get
    from segmentation.services import segments_recompute_many

    if keys:
        segments = [s for s in (segment_get(key=k) for k in keys) if s is not None]
    else:
        segments = Segment.objects.filter(kind=Segment.Kind.DYNAMIC)
    return {"applied": segments_recompute_many(segments=segments, job_id=job_id)["applied"]}


@shared_task(name="segmentation.segment_members_job", acks_late=True)
def segment_members_job_task(job_id: int):
    """A large manual member change; errors are recorded on the job, not retried (decisions)."""
    from segmentation.services.members import segment_members_job_run

    return segment_members_job_run(job_id=job_id)
