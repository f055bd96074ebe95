"""End to end with a real Celery worker and beat: a due schedule produces the file; a worker
killed mid-run leaves a run the reaper fails, and nothing at the destination."""

import datetime as dt
import http.server
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app
from segmentation.exports.services import export_create, export_run_start, export_runs_reap
from segmentation.models import ExportRun, Membership, Segment
from tests.factories import CustomerFactory
from tests.integration.conftest import _database_url, wait_for

pytestmark = pytest.mark.integration
BASE_DIR = Path(__file__).resolve().parent.parent.parent


def _start(args, log: Path, media: Path, extra_env=None):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test_worker",
        "DATABASE_URL": _database_url(),
        "TESSERA_DATA_DIR": str(settings.DATA_DIR),
        "DJANGO_MEDIA_ROOT": str(media),
        **(extra_env or {}),
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def worker(transactional_db, tmp_path):
    """A worker started as in production (its task modules come from settings); yields a starter for beat."""
    log = tmp_path / "worker.log"
    name = f"exports-{uuid.uuid4().hex[:8]}@%h"
    started = []

    def start_worker(extra_env=None):
        args = ["worker", "--pool=solo", "--loglevel=INFO", "--without-mingle", "--without-gossip", "-n", name]
        process = _start(args, log, tmp_path / "media", extra_env)
        started.append(process)
        wait_for(lambda: process.poll() is not None or b"ready." in log.read_bytes(), what="the worker", log=log)
        assert process.poll() is None, log.read_text()[-3000:]
        return process

    def start_beat():
        beat_log = tmp_path / "beat.log"
        args = ["beat", "--loglevel=INFO", "--max-interval=1", "-s", str(tmp_path / "beat-schedule")]
        process = _start([*args, "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"], beat_log, tmp_path)
        started.append(process)
        return process

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield {"start_worker": start_worker, "start_beat": start_beat, "log": log}
    finally:
        celery_app.conf.task_always_eager = eager
        for process in started:
            _stop(process)
        connection.close()


def _segment_with_members(n=3):
    segment = Segment.objects.create(key="nightly", name="Nightly", kind="static", status="ready")
    entered = timezone.now()
    customers = [CustomerFactory(external_id=f"n{i}") for i in range(n)]
    Membership.objects.bulk_create([Membership(segment=segment, customer=c, entered_at=entered) for c in customers])
    return segment


def test_schedule_due_in_seconds_produces_the_file(worker, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    segment = _segment_with_members()
    export = export_create(
        segment=segment, name="Nightly", columns=["external_id"], filename_template="{segment}-{date:%Y-%m-%d}.csv",
        destination_kind="folder", destination={"path": str(out)}, schedule_type="interval", interval_minutes=60,
        timezone="Pacific/Kiritimati",
    )  # fmt: skip
    # Due now: the last run was over an hour ago. Set before beat starts (queryset updates send no signal).
    PeriodicTask.objects.filter(pk=export.periodic_task_id).update(last_run_at=timezone.now() - dt.timedelta(hours=2))
    worker["start_worker"]()
    worker["start_beat"]()
    expected = f"nightly-{timezone.now().astimezone(dt.timezone(dt.timedelta(hours=14))):%Y-%m-%d}.csv"
    path = wait_for(
        lambda: (out / expected).exists() and out / expected, timeout=90, what="the file", log=worker["log"]
    )
    assert path.read_bytes() == b"external_id\r\nn0\r\nn1\r\nn2\r\n"
    run = wait_for(lambda: ExportRun.objects.filter(export=export, status="succeeded").first(), what="the run")
    assert run.trigger == "schedule" and run.rows_written == 3
    assert [p.name for p in out.iterdir()] == [expected]


class Stalling(http.server.BaseHTTPRequestHandler):
    hit = threading.Event()

    def do_POST(self):  # noqa: N802
        type(self).hit.set()
        threading.Event().wait(60)  # never answers in time: the worker is killed while waiting

    def log_message(self, *args):
        pass


def test_worker_killed_mid_run_is_reaped(worker, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    segment = _segment_with_members()
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
    url = f"http://127.0.0.1:{server.server_port}/hook"
    export = export_create(
        segment=segment, name="Hook", columns=["external_id"], destination_kind="webhook",
        destination={"url": url, "secret": "k" * 20},
    )  # fmt: skip
    process = worker["start_worker"]({"TESSERA_WEBHOOK_ALLOW_PRIVATE": "1"})
    run = export_run_start(export=export)  # enqueued to the broker on commit
    assert Stalling.hit.wait(60), worker["log"].read_text()[-3000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    run.refresh_from_db()
    assert run.status == "running"
    assert export_runs_reap(now=timezone.now() + dt.timedelta(hours=1)) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "stopped responding" in run.error
    assert not [p for p in run.temp_paths if os.path.exists(p)]
    assert export_run_start(export=export, enqueue=False).status == "queued"  # the claim is free again
    server.shutdown()
