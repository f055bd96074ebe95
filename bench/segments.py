"""Segment recompute benchmark (issue 4, "Performance"; decisions 49, 50).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/segments_bench REDIS_URL=redis://127.0.0.1:6379/14 \\
        flock /tmp/bench.lock .venv/bin/python -u bench/segments.py --customers 1000000 --events 10000000

Migrates the database, loads seeded profiles and events with COPY (about 3.5 minutes at 1M / 10M;
skipped when the database already holds that many `bench-` profiles, or with `--reuse`, and then
only VACUUM ANALYZE runs), then prints the machine and, for each pre-built segment and a mixed
3-condition segment (profile attribute, custom attribute, windowed event count), wall and CPU
seconds and the load average of:
- the product's full recompute (compile, stage, diff, apply in one transaction): the first run
  (every member enters) and median / p95 of further runs with `now` advancing 15 minutes each;
- the hand-written floor: the same semantics in SQL written by hand, staged and applied with
  the same diff/apply statements (segmentation.services.sql), and the ratio product / floor;
then a sweep of 100 dynamic segments, the time from an event accepted by the tracking API to
the membership change with a real worker running, and the worker's peak memory before and
after it recomputed the largest segment (memory must not follow segment size).
`--only recompute,sweep,latency` runs some parts, `--segments KEY,...` some segments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")  # DEBUG keeps every query in memory

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from customers.models import AttributeDefinition, Customer, Event, Source  # noqa: E402
from segmentation import tasks  # noqa: E402
from segmentation.models import LedgerEntry, Membership, Segment  # noqa: E402
from segmentation.services import (  # noqa: E402
    segment_create,
    segment_recompute,
    segment_request_recompute,
    segments_sweep,
)
from segmentation.services.sql import apply_staged, recompute_session, stage_drop  # noqa: E402

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
EVENT_NAMES = [
    ("Page Viewed", 55),
    ("Product Viewed", 20),
    ("Product Added", 10),
    ("Order Completed", 5),
    ("Email Opened", 7),
    ("Email Clicked", 3),
]
COUNTRIES = ["PL", "DE", "GB", "FR", "US", "ES"]
PLANS = ["free", "pro", "team"]
MIXED = {
    "match": "all",
    "conditions": [
        {"attribute": "country", "operator": "is", "value": "PL"},
        {"attribute": "custom.plan", "operator": "is", "value": "pro"},
        {
            "event": "Page Viewed",
            "within": {"last_days": 30},
            "count": {"operator": "at_least", "value": 3},
        },
    ],
}

# ------------------------------------------------------------------------------
# Hand-written floors: the same semantics as the engine (decisions 1-7), written directly.
# ------------------------------------------------------------------------------
E = "customers_event"
C = "customers_customer"


def _orders(having: str) -> str:
    return (
        f"SELECT e.customer_id FROM {E} e WHERE e.name = 'Order Completed' AND e.timestamp <= %(now)s "
        f"GROUP BY e.customer_id HAVING {having}"
    )


FLOORS = {
    "everyone": f"SELECT c.id FROM {C} c",
    "new-visitors": (
        f"SELECT c.id FROM {C} c WHERE c.first_seen_at > %(now)s - interval '30 days' "
        f"AND NOT EXISTS (SELECT 1 FROM {E} e WHERE e.customer_id = c.id AND e.name = 'Order Completed' "
        "AND e.timestamp <= %(now)s)"
    ),
    "returning-customers": _orders("count(*) >= 2"),
    # e.revenue is the stored numeric reading of properties.revenue (customers.Event.revenue).
    "high-value-customers": _orders("round(coalesce(sum(e.revenue), 0), 6) >= 1000"),
    "cart-abandoners": (
        f"SELECT DISTINCT a.customer_id FROM {E} a WHERE a.name = 'Product Added' "
        "AND a.timestamp > %(now)s - interval '7 days' AND a.timestamp <= %(now)s "
        f"AND NOT EXISTS (SELECT 1 FROM {E} b WHERE b.customer_id = a.customer_id AND b.name = 'Order Completed' "
        "AND b.timestamp <= %(now)s AND (b.timestamp > a.timestamp OR (b.timestamp = a.timestamp "
        "AND (b.received_at > a.received_at OR (b.received_at = a.received_at AND b.id > a.id)))))"
    ),
    "non-customer-visitors": (
        f"SELECT c.id FROM {C} c WHERE EXISTS (SELECT 1 FROM {E} e WHERE e.customer_id = c.id "
        "AND e.name = 'Page Viewed' AND e.timestamp <= %(now)s) "
        f"AND NOT EXISTS (SELECT 1 FROM {E} e WHERE e.customer_id = c.id AND e.name = 'Order Completed' "
        "AND e.timestamp <= %(now)s)"
    ),
    "engaged-mobile-browsers": (
        f"SELECT e.customer_id FROM {E} e WHERE e.name = 'Page Viewed' "
        "AND e.timestamp > %(now)s - interval '30 days' AND e.timestamp <= %(now)s "
        "AND lower(e.context->'device'->>'type') = 'mobile' GROUP BY e.customer_id HAVING count(*) >= 5"
    ),
    "email-engaged-customers": (
        f"SELECT DISTINCT e.customer_id FROM {E} e WHERE e.name IN ('Email Opened', 'Email Clicked') "
        "AND e.timestamp > %(now)s - interval '30 days' AND e.timestamp <= %(now)s"
    ),
    "loyal-customers": _orders("count(*) >= 5 AND max(e.timestamp) > %(now)s - interval '90 days'"),
    "at-risk-customers": _orders("count(*) >= 1 AND max(e.timestamp) < %(now)s - interval '90 days'"),
    "bench-mixed": (
        f"SELECT c.id FROM {C} c WHERE lower(c.country) = 'pl' AND jsonb_typeof(c.custom->'plan') = 'string' "
        "AND lower(c.custom->>'plan') = 'pro' AND c.id IN (SELECT e.customer_id FROM "
        f"{E} e WHERE e.name = 'Page Viewed' AND e.timestamp > %(now)s - interval '30 days' "
        "AND e.timestamp <= %(now)s GROUP BY e.customer_id HAVING count(*) >= 3)"
    ),
}


# ------------------------------------------------------------------------------
# Machine and data
# ------------------------------------------------------------------------------
def machine() -> None:
    mem = next((line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "")
    with connection.cursor() as cur:
        cur.execute("SELECT version()")
        version = cur.fetchone()[0]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {mem.split(':')[-1].strip()}")
    print(f"python {platform.python_version()}, database: {version}")


COPY_CHUNK = 50_000
EVENT_WEIGHTS = [(name, weight / 100) for name, weight in EVENT_NAMES]
WINDOW_SECONDS = 180 * 86400  # events spread over the last 180 days, a few up to 1 h after NOW


def _customer_rows(customers: int, rng: random.Random):
    created = NOW - dt.timedelta(days=400)
    for i in range(1, customers + 1):
        ts = (created + dt.timedelta(minutes=i % 500_000)).isoformat()
        plan = PLANS[int(rng.random() * 3)]
        country = COUNTRIES[int(rng.random() * 6)]
        custom = f'{{"plan": "{plan}", "score": {int(rng.random() * 101)}}}'
        yield f"{i}\tbench-{i}\tuser{i}@example.com\t{country}\t{custom}\t{ts}\t{ts}\n"


def _event_rows(customers: int, events: int, rng: random.Random):
    rand = rng.random
    cumulative, acc = [], 0.0
    for name, weight in EVENT_WEIGHTS:
        acc += weight
        cumulative.append((acc, name))
    base = int(NOW.timestamp()) + 3600
    mobile = '{"device": {"type": "mobile"}}'
    desktop = '{"device": {"type": "desktop"}}'
    for _ in range(events):
        cid = 1 + int(rand() * customers)
        r = rand()
        name = next(n for bound, n in cumulative if r < bound)
        ts = dt.datetime.fromtimestamp(base - int(rand() * (WINDOW_SECONDS + 3600)), dt.UTC).isoformat()
        properties = f'{{"revenue": {5 + rand() * 595:.2f}}}' if name == "Order Completed" else "{}"
        context = (mobile if rand() < 0.5 else desktop) if name == "Page Viewed" else "{}"
        yield f"{cid}\t{name}\t{ts}\t{ts}\t{properties}\t{context}\n"


def _copy(cur, sql: str, rows) -> None:
    """COPY text rows in chunks (psycopg 3 `Cursor.copy`); PostgreSQL parses while Python formats."""
    with cur.copy(sql) as copy:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= COPY_CHUNK:
                copy.write("".join(chunk))
                chunk.clear()
        if chunk:
            copy.write("".join(chunk))


def load(customers: int, events: int, seed: int, *, reuse: bool) -> None:
    """Load profiles and events with COPY (seeded, so the same arguments give the same data).

    Event indexes are dropped during the load and rebuilt after it. `--reuse` keeps whatever the
    database holds; otherwise an existing load of the same size is reused too.
    """
    have = Customer.objects.filter(external_id__startswith="bench-").count()
    if reuse or have >= customers:
        print(f"data: reusing {Customer.objects.count():,} profiles and {Event.objects.count():,} events")
        with connection.cursor() as cur:
            # A migration that rewrote the table (a new stored column) clears the visibility map,
            # and index-only scans then read the heap until VACUUM has run; cheap when nothing changed.
            started = time.monotonic()
            cur.execute(f"VACUUM ANALYZE {E}")
            cur.execute(f"VACUUM ANALYZE {C}")
            print(f"data: VACUUM ANALYZE in {time.monotonic() - started:.0f} s")
        return
    started = time.monotonic()
    rng = random.Random(seed)
    with connection.cursor() as cur:
        cur.execute(
            f"TRUNCATE {C}, {E}, segmentation_membership, segmentation_ledgerentry, segmentation_snapshot CASCADE"
        )
        _copy(
            cur,
            f"COPY {C} (id, external_id, email, country, custom, created_at, updated_at) FROM STDIN",
            _customer_rows(customers, rng),
        )
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{C}', 'id'), (SELECT max(id) FROM {C}))")
        with connection.schema_editor() as editor:
            for index in Event._meta.indexes:
                editor.remove_index(Event, index)
        _copy(
            cur,
            f"COPY {E} (customer_id, name, timestamp, received_at, properties, context) FROM STDIN",
            _event_rows(customers, events, rng),
        )
        copied = time.monotonic() - started
        with connection.schema_editor() as editor:
            for index in Event._meta.indexes:
                editor.add_index(Event, index)
        cur.execute(
            f"UPDATE {C} c SET first_seen_at = s.first, last_seen_at = s.last FROM "
            f"(SELECT customer_id, min(timestamp) AS first, max(timestamp) AS last FROM {E} GROUP BY customer_id) s "
            "WHERE s.customer_id = c.id"
        )
        cur.execute(f"VACUUM ANALYZE {C}")
        cur.execute(f"VACUUM ANALYZE {E}")
    print(
        f"data: loaded {customers:,} profiles and {events:,} events with COPY in {copied:.0f} s, "
        f"indexes and statistics after {time.monotonic() - started:.0f} s in all"
    )


# ------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------
def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, children: bool = False) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime are fields 14, 15 of stat; cutime, cstime 16, 17 (index from the state field = 3)
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / _TICKS


def _postmaster_pid() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Meter:
    """Wall and CPU seconds of a block: this Python process, its PostgreSQL backend, and the
    postmaster's reaped children (parallel workers; also any other client's exited backends, so
    read it as an upper bound on a shared machine)."""

    def __init__(self):
        with connection.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.backend = cur.fetchone()[0]
        self.postmaster = _postmaster_pid()

    def __enter__(self):
        self.start = self._now()
        return self

    def _now(self):
        return (
            time.monotonic(),
            time.process_time(),
            _proc_cpu(self.backend),
            _proc_cpu(self.postmaster, children=True),
        )

    def __exit__(self, *exc):
        end = self._now()
        self.wall, self.py, self.pg, self.workers = (b - a for a, b in zip(self.start, end, strict=True))

    @property
    def cpu(self) -> float:
        return self.py + self.pg + self.workers

    def __str__(self):
        return (
            f"wall {self.wall:.2f} s, CPU {self.cpu:.2f} s (Python {self.py:.2f}, PostgreSQL backend "
            f"{self.pg:.2f}, parallel workers <= {self.workers:.2f}), load {os.getloadavg()[0]:.2f}"
        )


def product_run(segment: Segment, now: dt.datetime) -> tuple[Meter, dict]:
    version = segment_request_recompute(segment=segment, reason="scheduled", enqueue=False)
    with Meter() as meter:
        result = segment_recompute(segment_id=segment.pk, version=version, reason="scheduled", now=now)
    return meter, result


def floor_run(segment: Segment, sql: str, now: dt.datetime) -> Meter:
    """Hand-written SELECT, then the product's own stage/diff/apply statements, in one transaction."""
    with Meter() as meter:
        _floor_apply(segment, sql, now)
    return meter


def _floor_apply(segment: Segment, sql: str, now: dt.datetime) -> None:
    from segmentation.models import Snapshot

    with transaction.atomic():
        Segment.objects.filter(pk=segment.pk).update(applied_version=segment.applied_version)
        recompute_session()
        with connection.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS tessera_segment_stage")
            cur.execute("CREATE TEMPORARY TABLE tessera_segment_stage (customer_id bigint PRIMARY KEY)")
            cur.execute(f"INSERT INTO tessera_segment_stage (customer_id) {sql}", {"now": now})
            size = cur.rowcount
            cur.execute("ANALYZE tessera_segment_stage")
        snapshot = Snapshot.objects.create(segment=segment, reason="scheduled", started_at=now, finished_at=now, size=0)
        apply_staged(segment_id=segment.pk, at=now, reason="scheduled", detail={}, snapshot_id=snapshot.pk, size=size)
        stage_drop()


def bench_recompute(runs: int, keys: list[str]) -> None:
    print(
        "\nFull recompute, wall seconds: first run | product median / p95 | floor median / p95 | ratio p95"
        "\n  then median CPU seconds (Python + PostgreSQL backend + parallel workers) product / floor, load average"
    )
    segments = list(Segment.objects.filter(prebuilt=True).order_by("key"))
    mixed = Segment.objects.filter(key="bench-mixed").first() or segment_create(
        name="Bench mixed", key="bench-mixed", definition=MIXED
    )
    for segment in [*segments, mixed]:
        if keys and segment.key not in keys:
            continue
        segment.refresh_from_db()
        first, result = product_run(segment, NOW)
        product, floor = [], []
        for i in range(1, runs + 1):
            # interleaved, so both see the same load
            now = NOW + dt.timedelta(minutes=15 * i)
            product.append(product_run(segment, now)[0])
            floor.append(floor_run(segment, FLOORS[segment.key], now))
        times, floor_times = [m.wall for m in product], [m.wall for m in floor]
        size = Segment.objects.get(pk=segment.pk).member_count
        print(
            f"  {segment.key:26} {size:>9,} members | first {first.wall:6.2f} | "
            f"{statistics.median(times):6.2f} / {p95(times):6.2f} | "
            f"{statistics.median(floor_times):6.2f} / {p95(floor_times):6.2f} | "
            f"x{p95(times) / max(p95(floor_times), 1e-6):.2f} | CPU "
            f"{statistics.median(m.cpu for m in product):5.2f} / {statistics.median(m.cpu for m in floor):5.2f} | "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


def bench_sweep(count: int) -> None:
    have = Segment.objects.filter(key__startswith="bench-sweep-").count()
    for i in range(have, count):
        definition = {
            "match": "all",
            "conditions": [
                {"attribute": "country", "operator": "is", "value": COUNTRIES[i % len(COUNTRIES)]},
                {"attribute": "custom.plan", "operator": "is", "value": PLANS[i % len(PLANS)]},
                {
                    "event": EVENT_NAMES[i % len(EVENT_NAMES)][0],
                    "within": {"last_days": 7 + i % 60},
                    "count": {"operator": "at_least", "value": 1 + i % 4},
                },
            ],
        }
        segment_create(name=f"Bench sweep {i}", key=f"bench-sweep-{i:03d}", definition=definition)
    with Meter() as meter:
        result = segments_sweep(scope="all", now=NOW + dt.timedelta(days=1))
    total = Segment.objects.filter(kind="dynamic").count()
    print(
        f"\nSweep of all {total} dynamic segments ({count} bench ones, "
        f"{settings.TESSERA_SWEEP_CONCURRENCY} at once): {result['applied']} applied, {meter}"
        "\n  (the sweep's own connections close when it ends, so their CPU is in the reaped-children figure)"
    )


def _worker(log: Path) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=WARNING"]
    command += ["--without-mingle", "--without-gossip", "-n", f"bench-segments-{os.getpid()}@%h"]
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    time.sleep(8)
    return process


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1])
    return 0


def bench_latency(samples: int) -> None:
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    segment = Segment.objects.filter(key="bench-fresh-buyers").first() or segment_create(
        name="Bench fresh buyers",
        key="bench-fresh-buyers",
        definition={"match": "all", "conditions": [{"event": "Order Completed", "within": {"last_hours": 1}}]},
    )
    segment.refresh_from_db()
    product_run(segment, dt.datetime.now(dt.UTC))
    source, _ = Source.objects.get_or_create(name="Bench segments")
    log = Path(settings.DATA_DIR) / "bench-segments-worker.log"
    worker = _worker(log)
    try:
        peak_start = _peak_kb(worker.pid)
        client = Client()
        latencies = []
        rng = random.Random(7)
        profiles = Customer.objects.filter(external_id__startswith="bench-").count()
        for _ in range(samples * 20):
            if len(latencies) >= samples:
                break
            # customers who are not members yet (a rerun within the hour finds the last run's buyers in)
            external_id = f"bench-{rng.randint(1, profiles)}"
            if Membership.objects.filter(segment=segment, customer__external_id=external_id).exists():
                continue
            started = time.monotonic()
            response = client.post(
                "/v1/track",
                data={"userId": external_id, "event": "Order Completed", "properties": {"revenue": 10}},
                content_type="application/json",
                HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(f"{source.write_key}:".encode()).decode(),
            )
            assert response.status_code == 200, response.content
            while not Membership.objects.filter(segment=segment, customer__external_id=external_id).exists():
                if time.monotonic() - started > 60:
                    raise SystemExit(f"no membership after 60 s; see {log}")
                time.sleep(0.02)
            latencies.append(time.monotonic() - started)
        print(
            f"\nEvent accepted -> membership with a worker ({len(latencies)} events): "
            f"p50 {statistics.median(latencies):.2f} s, p95 {p95(latencies):.2f} s"
        )
        everyone = Segment.objects.get(key="everyone")
        Membership.objects.filter(segment=everyone).delete()
        version = segment_request_recompute(segment=everyone, reason="scheduled", enqueue=False)
        tasks.segment_recompute_task.delay(everyone.pk, version, "scheduled")
        while Segment.objects.get(pk=everyone.pk).applied_version < version:
            time.sleep(0.2)
        print(
            f"Worker peak RSS: {peak_start / 1024:.0f} MB at start, {_peak_kb(worker.pid) / 1024:.0f} MB after "
            f"recomputing `everyone` ({Segment.objects.get(pk=everyone.pk).member_count:,} members enter)"
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sweep", type=int, default=100)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reuse", action="store_true", help="keep the loaded data whatever its size")
    parser.add_argument(
        "--only",
        default="load,recompute,sweep,latency",
        help="comma-separated parts to run: load, recompute, sweep, latency",
    )
    parser.add_argument("--segments", default="", help="comma-separated segment keys for the recompute part")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if connection.vendor != "postgresql":
        raise SystemExit("Run against PostgreSQL: DATABASE_URL=postgres://... (SQLite promises results, not speed).")
    call_command("migrate", verbosity=0)
    AttributeDefinition.objects.get_or_create(
        key="custom.plan", defaults={"label": "Plan", "kind": "custom", "type": "string"}
    )
    AttributeDefinition.objects.get_or_create(
        key="custom.score", defaults={"label": "Score", "kind": "custom", "type": "number"}
    )
    # Recomputes are timed here, in this process; creating segments must not enqueue them.
    tasks.segment_recompute_task.delay = lambda *a, **k: None
    machine()
    load(args.customers, args.events, args.seed, reuse=args.reuse or "load" not in parts)
    if "recompute" in parts:
        bench_recompute(args.runs, keys=[k for k in args.segments.split(",") if k])
    if "sweep" in parts:
        bench_sweep(args.sweep)
    del tasks.segment_recompute_task.delay  # back to the real Celery method for the worker part
    if "latency" in parts:
        bench_latency(args.latency_samples)
    print(f"\nLedger rows: {LedgerEntry.objects.count():,}")


if __name__ == "__main__":
    main()
