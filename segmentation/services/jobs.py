"""Small helpers for `customers.models.Job` rows of segment work (kind "recompute")."""

from __future__ import annotations

from django.utils import timezone

from customers.models import Job

RECOMPUTE = "recompute"


def job_create(*, params: dict, created_by=None, total: int | None = None) -> Job:
    user = created_by if created_by is not None and getattr(created_by, "is_authenticated", False) else None
    return Job.objects.create(kind=RECOMPUTE, params=params, created_by=user, total=total)


def job_start(job_id: int | None, *, total: int | None = None) -> None:
    if job_id:
        extra = {"total": total} if total is not None else {}
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=timezone.now(), **extra
        )


def job_progress(job_id: int | None, *, progress: int) -> None:
    if job_id:
        Job.objects.filter(pk=job_id).update(progress=progress)


def job_finish(job_id: int | None, *, result: dict, errors: list | None = None, progress: int = 1) -> None:
    if not job_id:
        return
    status = Job.Status.FAILED if errors else Job.Status.SUCCEEDED
    Job.objects.filter(pk=job_id).update(
        status=status, result=result, errors=errors or [], finished_at=timezone.now(), progress=progress
    )
