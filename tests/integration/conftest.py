"""A real Celery worker process against the real broker and the test database (decisions 47)."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app

BASE_DIR = Path(__file__).resolve().parent.parent.parent
STARTUP_SECONDS = 60


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(predicate, *, timeout: float = 60, what: str = "condition", log: Path | None = None):
    """Poll `predicate` until it is truthy; fail after `timeout` seconds with the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    pytest.fail(f"Timed out after {timeout} s waiting for {what}.\nWorker log:\n{tail}")


@pytest.fixture
def celery_worker_process(request, transactional_db, tmp_path):
    """Start `celery -A config worker` sharing the broker and the test database; stop it after.

    `@pytest.mark.worker(pool="prefork", env={...})` changes the pool (solo by default) or adds
    environment variables.
    """
    options = request.node.get_closest_marker("worker")
    options = options.kwargs if options else {}
    if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
        pytest.skip("The worker needs a file-backed SQLite test database.")
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test_worker",
        "DATABASE_URL": _database_url(),
        "TESSERA_DATA_DIR": str(settings.DATA_DIR),
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    env.update(options.get("env", {}))
    name = f"tessera-test-{uuid.uuid4().hex[:8]}@%h"
    pool = options.get("pool", "solo")
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", f"--pool={pool}", "--loglevel=INFO"]
    if pool == "prefork":
        command.append("--concurrency=1")
    command += ["--without-mingle", "--without-gossip", "-n", name]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    # This process sends tasks to the broker instead of running them eagerly.
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        wait_for(
            lambda: process.poll() is not None or b"ready." in log.read_bytes(),
            timeout=STARTUP_SECONDS,
            what="the worker to start",
            log=log,
        )
        if process.poll() is not None:
            pytest.fail(f"The worker exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        yield {"process": process, "log": log}
    finally:
        celery_app.conf.task_always_eager = eager
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # The worker's connections must be gone before pytest-django flushes or drops the database.
        connection.close()
