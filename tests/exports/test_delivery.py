"""Delivery to folders, storages and webhooks, and what failures leave behind (decisions 41)."""

import datetime as dt
import hashlib
import hmac
import http.server
import os
import threading

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from segmentation.exports.services import (
    export_files_cleanup,
    export_run_start,
    export_runs_reap,
    export_update,
)
from segmentation.models import Export, ExportRun

from .helpers import content, make_export, run_now

SECRET = "s3cret-s3cret-s3cret"


def test_folder_delivery_is_atomic_and_complete(members, segment, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    export = make_export(segment, destination_kind="folder", destination={"path": str(folder)})
    run = run_now(export)
    assert run.status == "succeeded", run.error
    assert os.listdir(folder) == ["vip.csv"]
    assert (folder / "vip.csv").read_bytes() == content(run)
    assert run.delivered_to == str(folder / "vip.csv")


def test_unwritable_folder_fails_without_partial_file(members, segment, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    export = make_export(segment, destination_kind="folder", destination={"path": str(folder)})
    # The temporary file is written, then os.replace fails (the target is a non-empty directory);
    # this fails for root too, unlike a chmod.
    (folder / "vip.csv").mkdir()
    (folder / "vip.csv" / "keep").write_text("x")
    run = run_now(export)
    assert run.status == ExportRun.Status.FAILED
    assert "Cannot write to folder" in run.error
    assert run.attempts == 2
    assert sorted(os.listdir(folder)) == ["vip.csv"] and os.listdir(folder / "vip.csv") == ["keep"]
    assert run.job.status == "failed" and run.job.errors[0]["message"] == run.error
    assert run.temp_paths == []
    assert not any(name.endswith(".part") for _, _, files in os.walk(tmp_path) for name in files)


def test_unwritable_folder_permissions(members, segment, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    folder = tmp_path / "ro"
    folder.mkdir()
    export = make_export(segment, destination_kind="folder", destination={"path": str(folder)})
    folder.chmod(0o500)
    try:
        run = run_now(export)
    finally:
        folder.chmod(0o700)
    assert run.status == ExportRun.Status.FAILED and "Cannot write to folder" in run.error
    assert os.listdir(folder) == []


def test_folder_settings_are_validated_on_save(segment):
    with pytest.raises(ValidationError) as err:
        make_export(segment, destination_kind="folder", destination={"path": "relative/dir"})
    assert "absolute" in str(err.value)


def test_s3_compatible_storage_gets_one_upload(members, segment, settings, tmp_path):
    bucket = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "bucket")},
    }
    settings.STORAGES = {**settings.STORAGES, "exports-bucket": bucket}
    export = make_export(segment, destination_kind="s3", destination={"storage": "exports-bucket", "prefix": "daily/"})
    run = run_now(export)
    assert run.status == "succeeded", run.error
    assert (tmp_path / "bucket" / "daily" / "vip.csv").read_bytes() == content(run)
    # a second run replaces the object rather than adding vip_abc123.csv
    run_now(export)
    assert os.listdir(tmp_path / "bucket" / "daily") == ["vip.csv"]
    with pytest.raises(ValidationError):
        make_export(segment, destination_kind="s3", destination={"storage": "nope"})


class Receiver(http.server.BaseHTTPRequestHandler):
    status = 200
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
    Receiver.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_webhook_receives_signed_csv(members, segment, receiver):
    Receiver.status = 204
    url = f"http://127.0.0.1:{receiver.server_port}/hook?x=1"
    export = make_export(segment, destination_kind="webhook", destination={"url": url, "secret": SECRET})
    run = run_now(export)
    assert run.status == "succeeded", run.error
    headers, body = Receiver.received[0]
    assert body == content(run)
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Tessera-Signature"] == expected


def test_webhook_500_fails_after_retries(members, segment, receiver):
    Receiver.status = 500
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    export = make_export(segment, destination_kind="webhook", destination={"url": url, "secret": SECRET})
    run = run_now(export)
    assert run.status == ExportRun.Status.FAILED
    assert "answered 500" in run.error
    assert len(Receiver.received) == 2 and run.attempts == 2


def test_webhook_to_private_address_is_refused(segment, settings):
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = False
    for url in ["http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://10.1.2.3/"]:
        with pytest.raises(ValidationError) as err:
            make_export(segment, destination_kind="webhook", destination={"url": url, "secret": SECRET})
        assert "private" in str(err.value)


def test_reaper_fails_orphaned_run_and_removes_temp_files(members, segment, tmp_path):
    export = make_export(segment)
    run = export_run_start(export=export, enqueue=False)
    temp = tmp_path / ".vip.csv.part"
    temp.write_bytes(b"half a fi")
    long_ago = timezone.now() - dt.timedelta(hours=1)
    ExportRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=long_ago, temp_paths=[str(temp)])
    assert export_runs_reap() == 1
    run.refresh_from_db()
    assert run.status == "failed" and "stopped responding" in run.error
    assert not temp.exists()
    # the export can run again
    assert run_now(export).status == "succeeded"


def test_reaper_leaves_live_runs_alone(members, segment):
    export = make_export(segment)
    run = export_run_start(export=export, enqueue=False)
    ExportRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=timezone.now())
    assert export_runs_reap() == 0


def test_disabled_after_five_failures_and_owner_emailed(members, segment, tmp_path, admin_user):
    from segmentation.exports.services import export_create

    export = export_create(
        segment=segment, owner=admin_user, name="Nightly", columns=["external_id"], schedule_type="interval",
        interval_minutes=60, destination_kind="folder", destination={"path": str(tmp_path / "gone")},
    )  # fmt: skip
    for _ in range(5):
        assert run_now(export).status == "failed"
    export.refresh_from_db()
    assert not export.enabled and export.consecutive_failures == 5
    assert not export.periodic_task.enabled
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [admin_user.email]
    assert "disabled" in mail.outbox[0].subject


def test_success_resets_failure_count(members, segment, tmp_path):
    export = make_export(segment, destination_kind="folder", destination={"path": str(tmp_path / "later")})
    run_now(export)
    (tmp_path / "later").mkdir()
    run_now(export)
    assert Export.objects.get(pk=export.pk).consecutive_failures == 0


def test_retention_removes_old_files_keeps_history(members, segment, settings):
    settings.TESSERA_EXPORT_RETENTION_DAYS = 7
    export = make_export(segment)
    old, new = run_now(export), run_now(export)
    ExportRun.objects.filter(pk=old.pk).update(finished_at=timezone.now() - dt.timedelta(days=8))
    path = old.file.path
    assert export_files_cleanup() == 1
    old.refresh_from_db()
    assert not old.file and not os.path.exists(path)
    new.refresh_from_db()
    assert new.file and os.path.exists(new.file.path)


def test_housekeeping_tasks_are_scheduled_once(segment):
    from django_celery_beat.models import PeriodicTask

    make_export(segment)
    make_export(segment, name="Second")
    tasks = dict(PeriodicTask.objects.filter(name__startswith="exports:").values_list("name", "task"))
    assert tasks == {
        "exports: reap orphaned runs": "segmentation.tasks_exports.export_runs_reap_task",
        "exports: delete expired files": "segmentation.tasks_exports.export_files_cleanup_task",
    }


def test_schedule_edits_follow_the_export(segment):
    export = make_export(segment, schedule_type="crontab", cron="15 2 * * 1", timezone="America/New_York")
    task = export.periodic_task
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("15", "2", "1")
    assert str(task.crontab.timezone) == "America/New_York" and task.enabled
    export_update(export=export, schedule_type="interval", interval_minutes=30, enabled=False)
    task.refresh_from_db()
    assert task.interval.every == 30 and task.crontab is None and not task.enabled
    export_update(export=export, schedule_type="none")
    assert Export.objects.get(pk=export.pk).periodic_task is None
