"""Settings modules, started as a real process would start them (manage.py in a subprocess)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage(tmp_path, *args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    base["TESSERA_DATA_DIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DJANGO_SECRET_KEY must be set in production."),
        ({"DJANGO_SECRET_KEY": "s" * 50, "DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must be off in production."),
    ],
)
def test_production_refuses_to_start(tmp_path, env, message):
    done = manage(tmp_path, "check", DJANGO_SETTINGS_MODULE="config.settings.production", **env)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert message in done.stderr


def test_production_starts_with_a_secret_key_and_debug_off(tmp_path):
    done = manage(tmp_path, "check", DJANGO_SETTINGS_MODULE="config.settings.production", DJANGO_SECRET_KEY="s" * 50)
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_the_embedded_default_passes_the_database_checks_without_warnings(tmp_path):
    # What `make run` meets first: migrate runs the database checks on the SQLite default.
    done = manage(tmp_path, "check", "--database", "default", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNINGS" not in done.stdout + done.stderr
