"""Benchmark: export a 1,000,000-member segment on PostgreSQL (issue 6).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tessera_bench_export \\
        .venv/bin/python bench/export.py [--rows N] [--python] [--mode delta] [--mandatory email]
        [--tagged] [--repeat N]

Creates the database if missing, migrates, and builds the customers and the static segment once
(server-side generate_series, so the setup does not bloat this process); later runs reuse them.
Prints the machine, rows/s of the whole run (snapshot if any + COPY + delivery), the time inside
export_snapshot and write_csv, CPU seconds of this process and of its PostgreSQL backend, the load
average and the peak extra memory (max RSS growth during the run). `--python` also times the
pure-Python path on the same rows; `--tagged` gives every third customer two tags.
Target: >= 200,000 rows/s with < 64 MB extra memory.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import sqlite3
import sys
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tessera_bench_export"
COLUMNS = ["external_id", "email", "first_name", "last_name", "country", "created_at", "tags", "entered_at"]


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_backend(pid: int) -> float:
    """User + system CPU seconds of a PostgreSQL backend on this host (/proc), 0 if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Phases:
    """Wall time spent inside the named functions (monkeypatched wrappers, benchmark only)."""

    def __init__(self):
        self.seconds = {}

    def wrap(self, module, name: str) -> None:
        inner = getattr(module, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        setattr(module, name, timed)


def _machine(connection) -> str:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return (
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, {mem} RAM; "
        f"Python {platform.python_version()}; PostgreSQL {pg}; SQLite {sqlite3.sqlite_version}"
    )


def _build(rows: int, key: str) -> None:
    from django.db import connection, transaction

    from segmentation.models import Membership, Segment

    segment = Segment.objects.filter(key=key).first()
    if segment and Membership.objects.filter(segment=segment).count() == rows:
        print(f"reusing segment {key} with {rows:,} members")
        return
    print(f"building {rows:,} customers and the segment (once)...", flush=True)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if segment:
            segment.memberships.all().delete()
            segment.delete()
        cursor.execute("DELETE FROM customers_customer WHERE external_id LIKE %s", ["bench-%"])
        cursor.execute(
            """
            INSERT INTO customers_customer
              (external_id, email, first_name, last_name, country, custom, created_at, updated_at)
            SELECT 'bench-' || g, 'user' || g || '@example.com', 'First' || g, 'Last, "quoted" ' || g,
                   (ARRAY['PL','GB','DE','US'])[1 + mod(g, 4)], '{}'::jsonb, now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [rows],
        )
        segment = Segment.objects.create(key=key, name="Bench 1M", kind="static", status="ready")
        cursor.execute(
            """
            INSERT INTO segmentation_membership (segment_id, customer_id, entered_at)
            SELECT %s, id, now() FROM customers_customer WHERE external_id LIKE 'bench-%%'
            """,
            [segment.pk],
        )
        cursor.execute("ANALYZE customers_customer; ANALYZE segmentation_membership")
    print(f"built in {time.perf_counter() - started:.1f} s")


def _tag(tagged: bool) -> None:
    """With --tagged every third bench customer carries two tags; without, the bench tags are removed."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM customers_customer_tags WHERE tag_id IN "
            "(SELECT id FROM customers_tag WHERE name IN ('bench-gold', 'bench-newsletter'))"
        )
        if not tagged:
            return
        cursor.execute(
            "INSERT INTO customers_tag (name, created_at) VALUES ('bench-gold', now()), ('bench-newsletter', now()) "
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute(
            "INSERT INTO customers_customer_tags (customer_id, tag_id) "
            "SELECT c.id, t.id FROM customers_customer c CROSS JOIN customers_tag t "
            "WHERE c.external_id LIKE 'bench-%%' AND c.id %% 3 = 0 AND t.name IN ('bench-gold', 'bench-newsletter')",
            [],
        )
        cursor.execute("ANALYZE customers_customer_tags")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--python", action="store_true", help="also time the pure-Python path")
    parser.add_argument("--mode", choices=["full", "delta"], default="full")
    parser.add_argument("--mandatory", default="", help="comma-separated mandatory attributes, e.g. email")
    parser.add_argument("--repeat", type=int, default=1, help="run the export this many times")
    parser.add_argument("--tagged", action="store_true", help="give every third customer two tags")
    args = parser.parse_args()

    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    if not url.startswith("postgres"):
        sys.exit("bench/export.py measures the PostgreSQL COPY path: set DATABASE_URL=postgres://...")
    _ensure_database(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("TESSERA_DATA_DIR", "/tmp/tessera-bench-export")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from segmentation.exports import csvwriter, services
    from segmentation.exports.selectors import export_columns
    from segmentation.exports.services import export_create, export_run, export_run_start, export_snapshot
    from segmentation.models import Export, ExportRun, Segment

    print(_machine(connection))
    key = f"bench-{args.rows}"
    _build(args.rows, key)
    _tag(args.tagged)
    segment = Segment.objects.get(key=key)
    Export.objects.filter(name="bench").delete()
    mandatory = [k for k in args.mandatory.split(",") if k]
    export = export_create(
        segment=segment, name="bench", columns=COLUMNS, filename_template="bench.csv", mode=args.mode,
        mandatory=mandatory,
    )  # fmt: skip
    phases = _Phases()
    phases.wrap(services, "export_snapshot")
    phases.wrap(csvwriter, "write_csv")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]

    for _ in range(args.repeat):
        phases.seconds.clear()
        load = os.getloadavg()
        baseline = _max_rss_mb()
        cpu_py, cpu_pg = _cpu_self(), _cpu_backend(backend)
        started = time.perf_counter()
        run = export_run_start(export=export, enqueue=False)
        run = export_run(run_id=run.pk)
        seconds = time.perf_counter() - started
        cpu_py, cpu_pg = _cpu_self() - cpu_py, _cpu_backend(backend) - cpu_pg
        peak = _max_rss_mb()
        assert run.status == ExportRun.Status.SUCCEEDED, run.error
        split = ", ".join(f"{name} {secs:.2f} s" for name, secs in phases.seconds.items())
        print(
            f"COPY path ({args.mode}{', mandatory ' + args.mandatory if mandatory else ''}): "
            f"{run.rows_written:,} rows in {seconds:.2f} s = {run.rows_written / seconds:,.0f} rows/s "
            f"(snapshot + COPY + delivery; {split}), file {run.file_size / 1e6:.1f} MB, "
            f"extra memory (max RSS growth) {peak - baseline:.1f} MB\n"
            f"  CPU: Python {cpu_py:.2f} s + PostgreSQL backend {cpu_pg:.2f} s = {cpu_py + cpu_pg:.2f} s "
            f"({run.rows_written / max(cpu_py + cpu_pg, 1e-9):,.0f} rows per CPU-second); "
            f"load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            flush=True,
        )

    if args.python:
        probe = ExportRun.objects.create(export=export, status="succeeded")
        export_snapshot(run=probe, export=export, now=run.started_at)
        sink = _CountingSink()
        started = time.perf_counter()
        rows = csvwriter.write_csv(
            out=sink, run=probe, export=export, columns=export_columns(export=export), today=run.started_at.date(),
            on_chunk=lambda n: None, use_copy=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        rate = rows / seconds
        print(f"Python path: {rows:,} rows in {seconds:.2f} s = {rate:,.0f} rows/s, max RSS {_max_rss_mb():.0f} MB")
        probe.delete()


class _CountingSink(io.RawIOBase):
    def __init__(self):
        self.bytes = 0

    def writable(self):
        return True

    def write(self, data):
        self.bytes += len(data)
        return len(data)


if __name__ == "__main__":
    main()
