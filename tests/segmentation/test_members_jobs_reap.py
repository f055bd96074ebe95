"""members_jobs_reap: members jobs whose worker died or never came end failed, with a message."""

import datetime as dt

import pytest
from django.utils import timezone

from customers.models import Job
from segmentation.services import members_jobs_reap
from segmentation.services.members import MEMBERS_JOB_STALE_SECONDS
from segmentation.tasks import segments_watchdog_task

pytestmark = pytest.mark.django_db

LONG_AGO = dt.timedelta(seconds=MEMBERS_JOB_STALE_SECONDS + 60)


def _job(status, *, age, kind="members", params=None):
    job = Job.objects.create(kind=kind, status=status, params=params or {})
    then = timezone.now() - age
    Job.objects.filter(pk=job.pk).update(created_at=then, started_at=then if status == Job.Status.RUNNING else None)
    return job


def test_stale_running_and_queued_jobs_fail_and_fresh_ones_stay(tmp_path):
    ids_file = tmp_path / "x.ids"
    ids_file.write_bytes(b"\x01" * 8)
    dead = _job(Job.Status.RUNNING, age=LONG_AGO, params={"ids_file": str(ids_file)})
    never = _job(Job.Status.QUEUED, age=LONG_AGO)
    busy = _job(Job.Status.RUNNING, age=dt.timedelta(minutes=5))
    waiting = _job(Job.Status.QUEUED, age=dt.timedelta(minutes=5))
    other_kind = _job(Job.Status.RUNNING, age=LONG_AGO, kind="recompute")
    done = _job(Job.Status.SUCCEEDED, age=LONG_AGO)

    assert sorted(members_jobs_reap()) == sorted([dead.pk, never.pk])

    dead.refresh_from_db()
    assert dead.status == Job.Status.FAILED and dead.finished_at is not None
    assert "added so far stay" in dead.errors[0]["message"]
    assert not ids_file.exists()
    never.refresh_from_db()
    assert never.status == Job.Status.FAILED and "nothing was added" in never.errors[0]["message"]
    for job, status in [(busy, "running"), (waiting, "queued"), (other_kind, "running"), (done, "succeeded")]:
        job.refresh_from_db()
        assert job.status == status
    assert members_jobs_reap() == []  # a second watchdog finds nothing left


def test_the_watchdog_task_reaps_members_jobs():
    dead = _job(Job.Status.RUNNING, age=LONG_AGO)
    result = segments_watchdog_task.delay().get()
    assert result == {"requeued": [], "reaped_jobs": [dead.pk]}
