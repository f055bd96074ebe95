"""Small helpers for `customers.models.Job` rows of segment work (kinds "recompute", "members")."""

from __future__ import annotations

from django.utils import timezone

from customers.models import Job

RECOMPUTE = "recompute"
# A large manual change of a static segment's members (admin "add all results", CSV upload).
MEMBERS = "members"


def job_create(*, params: dict, created_by=None, total: int | None = None, kind: str = RECOMPUTE) -> Job:
    user = created_by if created_by is not None and getattr(created_by, "is_authenticated", False) else None
    return Job.objects.create(kind=kind, params=params, created_by=user, total=total)


def job_start(job_id: int | None, *, total: int | None = None) -> bool:
    """Claim a queued job (compare-and-set); False when it is not queued any more."""
    if not job_id:
        return False
    extra = {"total": total} if total is not None else {}
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, started_at=timezone.now(), **extra
    )
    return claimed == 1


def job_progress(job_id: int | None, *, progress: int, total: int | None = None) -> None:
    if job_id:
        extra = {"total": total} if total is not None else {}
        Job.objects.filter(pk=job_id).update(progress=progress, **extra)


def job_finish(job_id: int | None, *, result: dict, errors: list | None = None, progress: int = 1) -> None:
    if not job_id:
        return
    status = Job.Status.FAILED if errors else Job.Status.SUCCEEDED
    Job.objects.filter(pk=job_id).update(
        status=status, result=result, errors=errors or [], finished_at=timezone.now(), progress=progress
    )
