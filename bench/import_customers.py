"""Benchmark: generate and import a large customer CSV (issue 2, "Performance").

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tessera_bench .venv/bin/python bench/import_customers.py
    options: --rows 1000000  --keep (leave the profiles)  --file PATH (reuse a generated file)
             --statements (time each SQL statement and print the slowest)

Runs the product path (customers.services.imports.customer_import) twice: a first import that
creates every profile, then the same file again (every row matched, compared, unchanged), and
prints the machine, rows/s and peak RSS. It migrates the database first and removes only the
profiles it created (external_id prefix "bench-") unless --keep is given.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import random
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")  # DEBUG keeps every query in memory

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from customers.csvformat import csv_writer, format_cell  # noqa: E402
from customers.models import Customer  # noqa: E402
from customers.services.imports import customer_import  # noqa: E402

FIRST = ["Anna", "Jan", "Maria", "Piotr", "Olga", "Tom", "Emma", "Liam", "Zoé", "Łukasz"]
LAST = ["Nowak", "Kowalski", "Smith", "Müller", "García", "Rossi", "Dubois", "Jones"]
COUNTRIES = ["PL", "DE", "GB", "FR", "US", "ES", "IT", "Poland", "Germany", "usa"]
CITIES = ["Warszawa", "Kraków", "Berlin", "London", "Paris", "New York", "Madrid", "Roma"]
TAGS = ["vip", "newsletter", "b2b", "churn-risk", "beta"]
HEADER = [
    "external_id",
    "email",
    "first_name",
    "last_name",
    "gender",
    "birth_date",
    "country",
    "city",
    "tags",
    "custom.score",
    "custom.plan",
]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv_writer(fh)
        writer.writerow(HEADER)
        for i in range(rows):
            birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))
            tags = rng.sample(TAGS, rng.randrange(3))
            writer.writerow(
                [
                    f"bench-{i}",
                    f"user{i}@example.com",
                    rng.choice(FIRST),
                    rng.choice(LAST),
                    rng.choice(["f", "m", "female", "male", ""]),
                    format_cell(birth),
                    rng.choice(COUNTRIES),
                    rng.choice(CITIES),
                    format_cell(tags, "list"),
                    format_cell(round(rng.random() * 1000, 2)),
                    rng.choice(["free", "pro", "team"]),
                ]
            )


def machine() -> str:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            db = f"PostgreSQL {cursor.fetchone()[0]}"
        else:
            db = f"SQLite {sqlite3.sqlite_version}"
    return (
        f"CPUs: {os.cpu_count()}, memory: {mem_kb / 1024 / 1024:.1f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}, database: {db}"
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def helpers_peak_rss_mb() -> float:
    """The largest peak RSS of a finished child process (the import's helpers)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def cpu_seconds() -> tuple[float, float, float | None]:
    """(this process, its finished helper processes, its PostgreSQL backend) CPU seconds, so
    figures on a shared machine can be read per CPU-second as well as per wall-clock second."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    mine = usage.ru_utime + usage.ru_stime
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    helpers = children.ru_utime + children.ru_stime
    if connection.vendor != "postgresql":
        return mine, helpers, None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return mine, helpers, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:  # the server runs on another machine
        return mine, helpers, None


class StatementTimer:
    """A Django execute_wrapper that adds up the wall time of each SQL statement (--statements).

    The COPY into the staging table goes through psycopg directly and is not counted: it runs
    while the file is validated, which is what the rest of the import's time is."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = " ".join(sql.split())[:110]
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

    def report(self, total: float) -> None:
        timed = sum(self.seconds.values())
        print(f"  SQL statements {timed:.1f} s of {total:.1f} s; the rest is reading, validating and staging:")
        for sql, seconds in sorted(self.seconds.items(), key=lambda item: -item[1])[:12]:
            print(f"    {seconds:6.2f} s  {sql}")


def timed_import(path: Path, label: str, *, statements: bool = False) -> None:
    cpu_before = cpu_seconds()
    timer = StatementTimer()
    started = time.perf_counter()
    with connection.execute_wrapper(timer) if statements else contextlib.nullcontext():
        result = customer_import(path_or_file=str(path), dry_run=False)
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds()
    if not result.ok:
        raise SystemExit(f"{label}: import rejected: {result.file_error or result.errors[:3]}")
    print(
        f"{label}: {result.rows:,} rows in {seconds:.1f} s = {result.rows / seconds:,.0f} rows/s "
        f"(created {result.created:,}, updated {result.updated:,}, unchanged {result.unchanged:,}); "
        f"peak RSS so far {peak_rss_mb():.0f} MB (helper processes {helpers_peak_rss_mb():.0f} MB); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    python_cpu = cpu_after[0] - cpu_before[0]
    helpers_cpu = cpu_after[1] - cpu_before[1]
    line = f"  CPU: Python {python_cpu:.1f} s, helper processes {helpers_cpu:.1f} s"
    if cpu_after[2] is not None:
        db_cpu = cpu_after[2] - cpu_before[2]
        per_cpu = result.rows / (python_cpu + helpers_cpu + db_cpu)
        line += f", database backend {db_cpu:.1f} s; {per_cpu:,.0f} rows per CPU-second"
    print(line)
    if statements:
        timer.report(seconds)


def remove_bench_profiles() -> None:
    # Raw SQL: the ORM collector would load a million ids to cascade to tables these rows never use.
    customers, through = Customer._meta.db_table, Customer.tags.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {through} WHERE customer_id IN (SELECT id FROM {customers} WHERE external_id LIKE %s)",
            ["bench-%"],
        )
        cursor.execute(f"DELETE FROM {customers} WHERE external_id LIKE %s", ["bench-%"])
        if connection.vendor == "postgresql":
            # Without it each run inserts into tables and indexes bloated by the last run's million
            # dead rows (autovacuum may not have come by), and the figures drift run after run.
            cursor.execute(f"VACUUM ANALYZE {customers}, {through}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--statements", action="store_true", help="print where the SQL time goes")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("Note: DATABASE_URL is not PostgreSQL; the target figure is for PostgreSQL.")
    call_command("migrate", verbosity=0)
    print(machine())
    print(f"Import helper processes: {settings.TESSERA_IMPORT_HELPERS} (TESSERA_IMPORT_HELPERS)")
    remove_bench_profiles()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "customers.csv"
        if not path.exists():
            started = time.perf_counter()
            generate(path, args.rows)
            size_mb = path.stat().st_size / 1e6
            print(f"Generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s")
        print(f"Peak RSS before importing: {peak_rss_mb():.0f} MB")
        timed_import(path, "First import (creates)", statements=args.statements)
        timed_import(path, "Same file again (matches, unchanged)", statements=args.statements)
    if not args.keep:
        remove_bench_profiles()


if __name__ == "__main__":
    main()
