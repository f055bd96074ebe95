import io

import pytest

from customers.models import Customer, Job
from customers.services.csvio import CsvFileError
from customers.services.imports import customer_import_run, customer_import_start, import_upload_store

pytestmark = pytest.mark.django_db

GOOD = b"external_id,email,tags\r\nu1,a@example.com,vip\r\nu2,b@example.com,\r\n"
BAD = b"external_id,email\r\nu1,a@example.com\r\nu2,nope\r\n"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def start(data: bytes, user=None, **kwargs):
    path = import_upload_store(file=io.BytesIO(data))
    return customer_import_start(upload_path=path, user=user, **kwargs)


def test_job_runs_after_commit_and_records_the_result(admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = start(GOOD, admin_user)
        assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
    assert len(callbacks) == 2  # the enqueue, then (run by it) the import's profile_changed batch
    job.refresh_from_db()
    assert job.kind == "import" and job.created_by == admin_user
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["created"] == 2 and job.result["rejected"] == 0
    assert job.errors == []
    assert job.progress == job.total == 3
    assert job.started_at and job.finished_at
    assert Customer.objects.count() == 2


def test_job_with_bad_rows_fails_and_writes_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = start(BAD)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.errors == [{"line": 3, "column": "email", "message": "“nope” is not a valid email address."}]
    assert job.result["error_total"] == 1
    assert Customer.objects.count() == 0


def test_dry_run_job_previews(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = start(GOOD, dry_run=True)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result["dry_run"] is True and job.result["created"] == 2
    assert Customer.objects.count() == 0


def test_file_level_error_fails_the_job(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = start(b"")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.result["file_error"] == "The file is empty."


def test_a_job_runs_once():
    job = start(GOOD)
    assert customer_import_run(job_id=job.pk).status == Job.Status.SUCCEEDED
    assert customer_import_run(job_id=job.pk) is None
    assert Customer.objects.count() == 2


def test_task_runs_the_job_eagerly():
    from customers.tasks_import import customer_import_task

    job = start(GOOD)
    customer_import_task.delay(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED


def test_upload_store_streams_and_enforces_the_limit(media):
    path = import_upload_store(file=io.BytesIO(GOOD))
    assert open(path, "rb").read() == GOOD
    with pytest.raises(CsvFileError, match="larger than the limit"):
        import_upload_store(file=io.BytesIO(b"x" * 2048), max_bytes=1024)
    assert len(list(media.rglob("*.csv"))) == 1
