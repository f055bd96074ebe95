"""Tracking ingestion benchmark: gunicorn + a Celery worker on PostgreSQL, Segment batches.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ingest_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/ingest.py --events 1000000 --clients 4

Migrates the database, creates a fresh source, starts `gunicorn config.wsgi` with production
settings and a Celery worker (the inbox drain, decisions 23), sends `--events` track calls in
batches of 100-500 (seeded sizes) from `--clients` processes over keep-alive HTTP, waits until
the inbox is drained, then checks that the database holds exactly the events sent (unique
messageIds, all under the bench source). Prints the machine, accepted events/s, p50/p99
request latency, the processing lag (last 200 -> inbox empty), the processing rate and the
CPU of every server-side process. `--sync` measures the old in-request processing instead.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVENT_NAMES = ["Page Viewed", "Product Viewed", "Product Added", "Order Completed", "Email Opened"]


def machine() -> dict:
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {
        "cpus": os.cpu_count(),
        "memory": f"{int(mem.split()[1]) // 1024 // 1024} GiB",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }


def batch_body(rng: random.Random, client: int, start: int, size: int, users: int, sent_at: str) -> bytes:
    items = []
    for seq in range(start, start + size):
        user = rng.randrange(users)
        items.append(
            {
                "type": "track",
                "messageId": f"bench-{client}-{seq}",
                "userId": f"user-{user}",
                "anonymousId": f"anon-{user}",
                "event": EVENT_NAMES[seq % len(EVENT_NAMES)],
                "timestamp": sent_at,
                "properties": {"sku": f"SKU-{seq % 997}", "price": round(rng.random() * 100, 2), "quantity": 1},
                "context": {
                    "library": {"name": "bench", "version": "1.0"},
                    "ip": "10.0.0.1",
                    "page": {"path": f"/p/{seq % 101}", "title": "Product"},
                },
            }
        )
    return json.dumps({"batch": items, "sentAt": sent_at}).encode()


def client_main(client: int, events: int, args, write_key: str, out: mp.Queue) -> None:
    rng = random.Random(args.seed * 1000 + client)
    import base64

    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
    latencies, sent, errors, seq = [], 0, [], 0
    while sent < events:
        size = min(rng.randint(args.batch_min, args.batch_max), events - sent)
        sent_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        body = batch_body(rng, client, seq, size, args.users, sent_at)
        for attempt in range(5):
            t0 = time.perf_counter()
            try:
                conn.request(
                    "POST", "/v1/batch", body=body, headers={"Content-Type": "application/json", "Authorization": auth}
                )
                response = conn.getresponse()
                payload = response.read()
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)
            if response.status == 200:
                break
            errors.append(f"{response.status} {payload[:200]!r}")
            time.sleep(0.5 * (attempt + 1))
        else:
            raise SystemExit(f"client {client}: batch at {seq} failed 5 times: {errors[-1]}")
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
        sent += size
        seq += size
    out.put({"client": client, "sent": sent, "latencies": latencies, "errors": errors, "cpu": time.process_time()})


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (and its reaped children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


class CpuSampler:
    """CPU seconds of a changing set of processes: the server's and worker's process trees and
    the PostgreSQL backends of the bench database. Processes may exit mid-run (pool children,
    closed connections), so their counters are sampled every `interval` and the last reading
    kept; each contributes its growth since it was first seen (or since start, if born later)."""

    def __init__(self, roots: list[int], dsn: str, interval: float = 0.5):
        import threading

        import psycopg

        self.roots, self.interval = roots, interval
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.stop = threading.Event()
        self.sample(initial=True)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def pids(self) -> dict[int, str]:
        out = {}
        for root in self.roots:
            out[root] = "app"
            todo = [root]
            while todo:
                for child in children(todo.pop()):
                    out[child] = "app"
                    todo.append(child)
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        out.update({row[0]: "db" for row in rows})
        return out

    def sample(self, initial: bool = False) -> None:
        for pid, kind in self.pids().items():
            value = cpu_seconds(pid)
            if pid not in self.first:
                self.first[pid] = value if initial else 0.0
                self.kind[pid] = kind
            self.last[pid] = max(value, self.last.get(pid, 0.0))

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()

    def finish(self) -> dict[int, float]:
        self.stop.set()
        self.thread.join()
        self.sample()
        self.conn.close()
        return {pid: self.last[pid] - self.first[pid] for pid in self.first}


def warm_up(args, write_key: str, inbox_model) -> None:
    """A few small batches on a separate source so every gunicorn worker and the drain have
    imported their lazily loaded modules before CPU is counted."""
    import base64
    from concurrent.futures import ThreadPoolExecutor

    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    rng = random.Random(args.seed)

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
        body = batch_body(rng, 1000 + i, 0, 10, args.users, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
        conn.request(
            "POST", "/v1/batch", body=body, headers={"Content-Type": "application/json", "Authorization": auth}
        )
        conn.getresponse().read()
        conn.close()

    with ThreadPoolExecutor(args.workers * 2) as pool:
        list(pool.map(one, range(args.workers * 8)))
    deadline = time.monotonic() + 120
    while inbox_model.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def settle(roots: list[int], timeout: float = 120) -> None:
    """Wait until the server and worker have finished booting (their CPU stops growing), so
    imports and Django setup do not count as ingestion work."""

    def total() -> float:
        pids, todo = set(roots), list(roots)
        while todo:
            kids = children(todo.pop())
            pids.update(kids)
            todo += kids
        return sum(cpu_seconds(pid) for pid in pids)

    deadline = time.monotonic() + timeout
    before = total()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = total()
        if now - before < 0.05:
            return
        before = now


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"gunicorn did not listen on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--batch-min", type=int, default=100)
    parser.add_argument("--batch-max", type=int, default=500)
    parser.add_argument("--users", type=int, default=50_000, help="distinct userIds (with one anonymousId each)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drainers", type=int, default=1, help="Celery worker processes draining the inbox")
    parser.add_argument("--sync", action="store_true", help="process inside the request (TESSERA_TRACKING_INBOX=0)")
    args = parser.parse_args()

    db_url = os.environ.get("DATABASE_URL", "")
    if not db_url.startswith("postgres"):
        raise SystemExit("Set DATABASE_URL=postgres://... (the benchmark runs on PostgreSQL).")
    if "conn_max_age" not in db_url:
        # Persistent connections, as documented for production: a new PostgreSQL backend per
        # request would cost more than the request itself.
        db_url += ("&" if "?" in db_url else "?") + "conn_max_age=600"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_LOG_LEVEL": "WARNING",
        "TESSERA_TRACKING_INBOX": "0" if args.sync else "1",
    }
    if not args.sync and not os.environ.get("REDIS_URL"):
        raise SystemExit("Set REDIS_URL=redis://... (the Celery broker of the inbox drain).")
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from customers.models import Event, InboxBatch, Source

    call_command("migrate", verbosity=0)
    source = Source.objects.create(name=f"bench {time.strftime('%Y-%m-%d %H:%M:%S')}")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        # Fresh statistics, as after seeding: tables that start empty otherwise keep plans made
        # for zero rows (sequential scans) until autovacuum catches up.
        cursor.execute("ANALYZE")
    connection.close()

    info = machine() | {"postgresql": pg_version}
    print("machine:", ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        f"run: {args.events:,} events, batches {args.batch_min}-{args.batch_max}, {args.clients} clients, "
        f"gunicorn {args.workers} sync workers, "
        + ("synchronous processing" if args.sync else f"{args.drainers} Celery drain process(es)")
        + f", {args.users:,} users"
    )

    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen(
        [
            str(bin_dir / "gunicorn"),
            "config.wsgi:application",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{args.port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    drain = None
    if not args.sync:
        drain = subprocess.Popen(
            [
                str(bin_dir / "celery"),
                "-A",
                "config",
                "worker",
                "--concurrency",
                str(args.drainers),
                "--pool",
                "solo" if args.drainers == 1 else "prefork",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "WARNING",
                "-n",
                f"bench-ingest-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
        )
    try:
        wait_for_port(args.port)
        out: mp.Queue = mp.Queue()
        share = [
            args.events // args.clients + (1 if i < args.events % args.clients else 0) for i in range(args.clients)
        ]
        procs = [
            mp.Process(target=client_main, args=(i, share[i], args, source.write_key, out)) for i in range(args.clients)
        ]
        roots = [server.pid, drain.pid] if drain else [server.pid]
        warm_up(args, Source.objects.create(name="bench warm-up").write_key, InboxBatch)
        settle(roots)
        sampler = CpuSampler(roots, db_url.split("?")[0])
        app_pids = {server.pid, *children(server.pid)}
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - t0
        # Processing lag: time from the last 200 until every accepted event is stored.
        lag_start = time.perf_counter()
        expected = sum(r["sent"] for r in results)
        # A claimed row stays visible until its drain commits, so an empty inbox means done.
        while InboxBatch.objects.filter(error="").exists() and time.perf_counter() - lag_start < 3600:
            if drain is not None and drain.poll() is not None:
                raise SystemExit(f"the Celery worker exited with {drain.returncode}")
            time.sleep(0.2)
        lag = time.perf_counter() - lag_start
        failed = InboxBatch.objects.exclude(error="").count()
        connection.close()
        used = sampler.finish()
        app_cpu = sum(v for pid, v in used.items() if pid in app_pids)
        drain_cpu = sum(v for pid, v in used.items() if sampler.kind[pid] == "app" and pid not in app_pids)
        db_cpu = sum(v for pid, v in used.items() if sampler.kind[pid] == "db")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if drain:
            drain.terminate()
            drain.wait(timeout=60)

    latencies = sorted(x for r in results for x in r["latencies"])
    errors = [e for r in results for e in r["errors"]]
    stored = Event.objects.filter(source=source).count()
    distinct = Event.objects.filter(source=source).values("message_id").distinct().count()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"requests: {len(latencies):,} ({len(errors)} retried: {errors[:3]})")
    print(f"accepted: {expected:,} events in {elapsed:.1f} s = {expected / elapsed:,.0f} events/s")
    print(f"latency per batch request: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    mode = "synchronous ingestion" if args.sync else "inbox drained by the worker"
    print(f"processing lag after the last 200: {lag:.2f} s ({mode})")
    print(f"processed: {expected:,} events in {elapsed + lag:.1f} s = {expected / (elapsed + lag):,.0f} events/s")
    client_cpu = sum(r["cpu"] for r in results)
    server_cpu = app_cpu + db_cpu + drain_cpu
    per_k = server_cpu / expected * 1000
    print(
        f"CPU: gunicorn {app_cpu:.1f} s + worker {drain_cpu:.1f} s + PostgreSQL backends {db_cpu:.1f} s "
        f"(clients {client_cpu:.1f} s) = {per_k * 1000:.0f} ms per 1,000 events = "
        f"{expected / server_cpu:,.0f} events per server CPU second -> {os.cpu_count() / per_k * 1000:,.0f} events/s "
        f"on {os.cpu_count()} idle cores (projection, clients excluded; load average now "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    if failed:
        print(f"inbox rows set aside with an error: {failed}")
    verdict = "OK" if stored == distinct == expected else "MISMATCH"
    print(f"stored: {stored:,} events, {distinct:,} distinct messageIds -> {verdict}")
    if not stored == distinct == expected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
