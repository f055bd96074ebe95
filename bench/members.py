"""Manual segments at scale: "add all results" of a search and CSV uploads in the admin.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/members_bench REDIS_URL=redis://127.0.0.1:6379/9 \\
        flock /tmp/bench.lock .venv/bin/python -u bench/members.py --customers 1000000

Loads seeded profiles with COPY (bench/segments.py's loader, no events; reused when present),
then prints the machine and, with wall and CPU seconds (this process and its PostgreSQL
backend) and the load average:
- before: the chunked per-id path the admin ran inside the request for every size
  (`_apply_in_chunks` over `segment_members_add`, 10,000 ids a call), adding every customer;
- after, the request: POST "add all results" to the admin view (bounded count, job row, 202);
  the task is sent to the broker, not run, and purged afterwards;
- after, the job: `segment_members_job_run` for that job (set-based chunks), then the same for a
  CSV-sized id list (every customer id, as the matched rows of an upload);
- the CSV upload request itself at `--csv-rows` rows (matching stays in the request).
`--skip-before` leaves out the slow old path.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import segments as seg_bench  # noqa: E402  (sets up Django)
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from config.celery import app as celery_app  # noqa: E402
from customers.models import Customer, Job  # noqa: E402
from segmentation import services  # noqa: E402
from segmentation.admin_views import UPLOAD_MAX_ROWS, SegmentAdminViews  # noqa: E402
from segmentation.models import LedgerEntry, Membership, Segment, Snapshot  # noqa: E402

Meter = seg_bench.Meter


def fresh_segment(key: str) -> Segment:
    Segment.objects.filter(key=key).delete()
    return services.segment_create(name=key, key=key, kind="static")


def clean(segment: Segment) -> None:
    for model in (LedgerEntry, Membership, Snapshot):
        model.objects.filter(segment=segment).delete()
    segment.delete()


def report(label: str, meter: Meter, rows: int) -> None:
    rate = rows / meter.cpu if meter.cpu else 0
    print(f"{label}: {rows:,} rows, {meter}; {rows / meter.wall:,.0f} rows/s wall, {rate:,.0f} rows per CPU-s")


def check(segment: Segment, expected: int) -> None:
    segment.refresh_from_db()
    members = Membership.objects.filter(segment=segment).count()
    ledger = LedgerEntry.objects.filter(segment=segment, reason="manual").count()
    assert segment.member_count == members == ledger == expected, (segment.member_count, members, ledger)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--csv-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-before", action="store_true")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    seg_bench.machine()
    seg_bench.load(args.customers, 0, args.seed, reuse=False)
    total = Customer.objects.count()
    user, _ = get_user_model().objects.get_or_create(
        username="members-bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST="localhost")
    eager = celery_app.conf.task_always_eager
    client.force_login(user)

    if not args.skip_before:
        segment = fresh_segment("bench-members-before")
        ids = Customer.objects.order_by("pk").values_list("pk", flat=True)
        with Meter() as meter:
            SegmentAdminViews._apply_in_chunks(segment, ids, service="segment_members_add")
        report("before: in-request chunked add (all customers)", meter, total)
        check(segment, total)
        clean(segment)

    segment = fresh_segment("bench-members-job")
    celery_app.conf.task_always_eager = False
    try:
        url = reverse("admin:segmentation_segment_members_add", args=[segment.pk])
        with Meter() as meter:
            response = client.post(url, '{"search": {}}', content_type="application/json")
        assert response.status_code == 202, response.content
        print(f"after: add-all request answered {response.status_code} in {meter}")
        job_id = response.json()["job"]
    finally:
        celery_app.conf.task_always_eager = eager
        celery_app.control.purge()
    with Meter() as meter:
        result = services.segment_members_job_run(job_id=job_id)
    report("after: members job, search (all customers)", meter, total)
    assert result["added"] == total, result
    check(segment, total)
    print(f"  job {job_id}: {Job.objects.get(pk=job_id).status}, snapshots {segment.snapshots.count()}")
    clean(segment)

    segment = fresh_segment("bench-members-ids")
    job = services.segment_members_job_create(
        segment=segment, user=user, customer_ids=list(Customer.objects.values_list("pk", flat=True))
    )
    with Meter() as meter:
        result = services.segment_members_job_run(job_id=job.pk)
    report("after: members job, CSV ids (all customers)", meter, total)
    check(segment, total)
    clean(segment)

    segment = fresh_segment("bench-members-csv")
    rows = min(args.csv_rows, total, UPLOAD_MAX_ROWS - 1)  # the header counts as a row
    text = "external_id\n" + "".join(f"bench-{i}\n" for i in range(1, rows + 1))
    upload = io.BytesIO(text.encode())
    upload.name = "members.csv"
    celery_app.conf.task_always_eager = False
    try:
        url = reverse("admin:segmentation_segment_members_upload", args=[segment.pk])
        with Meter() as meter:
            response = client.post(url, {"file": upload})
        assert response.status_code == 202, response.content
        print(f"after: CSV upload request (matching), {rows:,} rows -> {response.status_code} in {meter}")
    finally:
        celery_app.conf.task_always_eager = eager
        celery_app.control.purge()
    clean(segment)
    for job in Job.objects.filter(created_by=user):
        if job.params.get("ids_file"):  # the upload's job was purged, not run: drop its id file
            Path(job.params["ids_file"]).unlink(missing_ok=True)
        job.delete()
    print(f"load average now {os.getloadavg()}")
    connection.close()


if __name__ == "__main__":
    main()
