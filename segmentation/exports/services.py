"""Writes for exports: definitions, claiming and executing runs, reaping and retention (issue 6).

A run goes queued -> running -> succeeded | failed. The claim is a partial unique index (one active
run per export) plus a compare-and-set from queued to running, so it holds on SQLite and PostgreSQL
alike (decisions 48). A run reads one fixed membership version without holding a transaction
open across the run: a delta run (and any run on SQLite) first copies the segment's membership into
ExportedMember in one INSERT ... SELECT; a full run on PostgreSQL reads the membership in its single
COPY statement instead (see _reads_membership_directly). Then the file is streamed to internal run
storage and delivered with a few attempts and backoff (decisions 41).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
import zoneinfo
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Value
from django.utils import timezone

from customers.models import Job
from segmentation.models import Export, ExportedMember, ExportRun, Membership

from . import csvwriter, destinations, schedules
from .selectors import export_available_columns, export_columns, export_last_success, mandatory_expression

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = (
    "segment", "name", "columns", "mandatory", "delimiter", "bom", "filename_template", "mode",
    "destination_kind", "destination", "schedule_type", "cron", "interval_minutes", "timezone", "enabled", "owner",
)  # fmt: skip
FAILURES_BEFORE_DISABLE = 5
EMPTY_WARNING = "The export produced no rows: the segment is empty or no member has every mandatory attribute."


class ExportRunActive(Exception):
    """A run of this export is already queued or running (409)."""


def _setting(name: str, default):
    return getattr(settings, name, default)


# ------------------------------------------------------------------------------
# Definitions
# ------------------------------------------------------------------------------
def filename_render(*, export: Export, when: dt.datetime, run_id: int | None = None) -> str:
    """The file name from the template; `{date:...}` is formatted in the export's time zone (decisions 42)."""
    try:
        local = when.astimezone(zoneinfo.ZoneInfo(export.zone_name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"timezone": f"“{export.zone_name}” is not an IANA time zone."})
    try:
        name = export.filename_template.format(
            segment=export.segment.key, export=export.name, date=local, run=run_id or 0, mode=export.mode
        )
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ValidationError({"filename_template": f"Cannot use this template: {exc}"})
    name = name.replace("/", "-").replace("\\", "-").replace("\x00", "").strip()
    if not name or name.startswith("."):
        raise ValidationError({"filename_template": "The file name may not be empty or start with a dot."})
    return name


def export_validate(*, export: Export) -> None:
    """Raise ValidationError (a dict of field messages) when the export cannot run as configured."""
    errors = {}
    available = {c.key for c in export_available_columns()}
    if not isinstance(export.columns, list) or not export.columns:
        errors["columns"] = "Choose at least one column."
    else:
        unknown = [k for k in export.columns if not isinstance(k, str) or k not in available]
        if unknown:
            errors["columns"] = f"Unknown columns: {', '.join(map(str, unknown))}."
        elif len(set(export.columns)) != len(export.columns):
            errors["columns"] = "A column appears twice."
        elif export.mode == Export.Mode.DELTA and "external_id" not in export.columns:
            errors["columns"] = "A delta export needs the external_id column (removed customers are named by it)."
    mandatory = export.mandatory if isinstance(export.mandatory, list) else None
    if mandatory is None:
        errors["mandatory"] = "Give a list of attribute keys."
    else:
        unknown = [k for k in mandatory if not isinstance(k, str) or k not in available or k == "entered_at"]
        if unknown:
            errors["mandatory"] = f"Unknown attributes: {', '.join(map(str, unknown))}."
    for key, check in (
        (
            "destination",
            lambda: destinations.destination_validate(kind=export.destination_kind, config=export.destination),
        ),
        ("schedule", lambda: schedules.schedule_validate(export=export)),
        ("filename_template", lambda: filename_render(export=export, when=timezone.now())),
    ):
        try:
            result = check()
            if key == "destination":
                export.destination = result
        except ValidationError as exc:
            errors.update({k: " ".join(v) for k, v in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def export_create(*, owner=None, **fields) -> Export:
    """Create an export (validated) and its beat schedule."""
    export = Export(owner=owner)
    for key, value in fields.items():
        if key not in EDITABLE_FIELDS:
            raise ValidationError({key: "Unknown field."})
        setattr(export, key, value)
    export_validate(export=export)
    export.save()
    schedules.schedule_sync(export=export)
    return export


@transaction.atomic
def export_update(*, export: Export, **fields) -> Export:
    for key, value in fields.items():
        if key not in EDITABLE_FIELDS:
            raise ValidationError({key: "Unknown field."})
        setattr(export, key, value)
    if fields.get("enabled"):
        export.consecutive_failures = 0
    export_validate(export=export)
    export.save()
    schedules.schedule_sync(export=export)
    return export


@transaction.atomic
def export_delete(*, export: Export) -> None:
    task = export.periodic_task
    for run in export.runs.exclude(file=""):
        run.file.delete(save=False)
    export.delete()
    if task is not None:
        task.delete()


# ------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------
def export_run_start(*, export: Export, user=None, trigger: str = ExportRun.Trigger.MANUAL, enqueue: bool = True):
    """Queue a run (and its Job). Raises ExportRunActive while another run is queued or running."""
    try:
        with transaction.atomic():
            job = Job.objects.create(kind="export", params={"export_id": export.pk}, created_by=user)
            run = ExportRun.objects.create(export=export, job=job, trigger=trigger)
            job.params = {"export_id": export.pk, "run_id": run.pk}
            job.save(update_fields=["params"])
    except IntegrityError:
        raise ExportRunActive(f"Export “{export.name}” already has a run in progress.")
    if enqueue:
        from segmentation.tasks_exports import export_run_task

        transaction.on_commit(lambda: export_run_task.delay(run.pk))
    return run


def _insert_select(queryset, columns: list[str]) -> int:
    """INSERT INTO exportedmember (columns) SELECT ...: one statement, so the copy is one consistent read."""
    sql, params = queryset.query.sql_with_params()
    table = connection.ops.quote_name(ExportedMember._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({cols}) {sql}", params)
        return cursor.rowcount


MEMBER_COLUMNS = ["run_id", "customer_id", "external_id", "entered_at", "included", "change"]


def _reads_membership_directly(export: Export) -> bool:
    """A full run on PostgreSQL skips the snapshot: its one COPY statement reads the membership.

    One statement sees one committed state of the membership (applies are single transactions,
    decisions 27), so the file is the fixed version decisions 48 asks for, without copying a million
    ids first or holding a transaction beyond that statement. A full run's member set is not a
    delta baseline (export_snapshot), so nothing has to be kept for the next run. SQLite reads in
    keyset chunks, which need the snapshot.
    """
    return export.mode == Export.Mode.FULL and connection.vendor == "postgresql"


def export_snapshot(*, run: ExportRun, export: Export, now: dt.datetime) -> dict:
    """Copy the membership (with the mandatory check) and compute a delta's changes. Returns counts."""
    included = mandatory_expression(keys=export.mandatory, now=now) if export.mandatory else Value(True)
    members = (
        Membership.objects.filter(segment_id=export.segment_id)
        .order_by()
        .annotate(x_run=Value(run.pk), x_inc=included, x_change=Value(""))
        .values_list("x_run", "customer_id", "customer__external_id", "entered_at", "x_inc", "x_change")
    )
    with transaction.atomic():
        total = _insert_select(members, MEMBER_COLUMNS)
    if connection.vendor == "postgresql" and total > 10_000:
        # Fresh statistics, or the planner takes a million new rows for a handful.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(ExportedMember._meta.db_table)}")
    current = ExportedMember.objects.filter(run=run)
    counts = {"members_total": total, "rows_skipped": current.filter(included=False).count()}
    if export.mode != Export.Mode.DELTA:
        return counts
    # Only a successful delta run keeps its member set (_run_succeed): after a full run, or on the
    # first run, `previous` has no rows and every member is `added`.
    previous = export_last_success(export=export, before=run)
    with transaction.atomic():
        if previous is None:
            added = current.filter(included=True).update(change=ExportedMember.Change.ADDED)
            removed = 0
        else:
            # EXISTS, not IN: NOT IN (subquery) cannot become an anti-join, and once the subquery's
            # ids outgrow work_mem PostgreSQL rescans it for every row (a 1M-member delta ran for
            # over ten minutes).
            before = ExportedMember.objects.filter(run=previous, included=True, customer_id=OuterRef("customer_id"))
            now_read = ExportedMember.objects.filter(run=run, customer_id=OuterRef("customer_id"))
            added = current.filter(included=True).exclude(Exists(before)).update(change="added")
            removed = current.filter(Exists(before), included=False).update(change="removed")
            gone = (
                ExportedMember.objects.filter(run=previous, included=True)
                .exclude(Exists(now_read))
                .order_by()
                .annotate(x_run=Value(run.pk), x_inc=Value(False), x_change=Value("removed"))
                .values_list("x_run", "customer_id", "external_id", "entered_at", "x_inc", "x_change")
            )
            removed += _insert_select(gone, MEMBER_COLUMNS)
    counts.update(rows_added=added, rows_removed=removed)
    return counts


class _Heartbeat:
    """Beats (and publishes progress) from a thread with its own connection while the run works.

    A long webhook POST or COPY is then not mistaken for a dead worker; only a killed process stops
    the beat (and the reaper takes over). The writer only sets `rows`: its own connection may be
    busy streaming a COPY, which cannot be interleaved with other statements.
    """

    def __init__(self, run: ExportRun, every: float):
        self.run_id = run.pk
        self.job_id = run.job_id
        self.every = every
        self.rows = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"export-heartbeat-{run.pk}", daemon=True)

    def __call__(self, rows: int) -> None:
        self.rows = rows

    def _beat(self):
        try:
            while not self.stop.wait(self.every):
                try:
                    ExportRun.objects.filter(pk=self.run_id, status=ExportRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now(), rows_written=self.rows
                    )
                    if self.job_id:
                        Job.objects.filter(pk=self.job_id).update(progress=self.rows)
                except DatabaseError:  # a busy database misses one beat, not the run
                    logger.warning("Export run %s: heartbeat failed", self.run_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def _temp_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "exports" / ".tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _remember_temp(run: ExportRun, path: str) -> None:
    if path not in run.temp_paths:
        run.temp_paths = [*run.temp_paths, path]
        ExportRun.objects.filter(pk=run.pk).update(temp_paths=run.temp_paths)


def _remove_temps(paths) -> None:
    for path in paths or []:
        try:
            os.unlink(path)
        except (FileNotFoundError, IsADirectoryError):
            pass
        except OSError:
            logger.warning("Could not remove temporary export file %s", path)


@contextlib.contextmanager
def _consistent_read(*, needed: bool):
    """One REPEATABLE READ transaction, so the COPY and the member count after it see one snapshot.

    It lasts as long as the COPY statement would anyway. Inside an outer transaction (tests) the
    isolation level can no longer be chosen, and that transaction is used as it is.
    """
    if not needed:
        yield
        return
    outer = connection.in_atomic_block
    with transaction.atomic():
        if not outer:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _write_internal(
    *, run: ExportRun, export: Export, filename: str, now: dt.datetime, progress: _Heartbeat
) -> tuple[str, int]:
    """Stream the CSV to internal run storage; returns (local path to deliver from, data rows)."""
    temp = str(_temp_dir() / f".run-{run.pk}-{os.getpid()}.csv.part")
    _remember_temp(run, temp)
    columns = export_columns(export=export)
    direct = _reads_membership_directly(export)
    with open(temp, "wb") as out, _consistent_read(needed=direct and bool(export.mandatory)):
        rows = csvwriter.write_csv(
            out=out, run=run, export=export, columns=columns, today=now.date(), on_chunk=progress, direct=direct
        )
        if direct:
            # Members left out for a missing mandatory attribute: counted in the COPY's snapshot.
            total = Membership.objects.filter(segment_id=export.segment_id).count() if export.mandatory else rows
        out.flush()
        os.fsync(out.fileno())
    if direct:
        ExportRun.objects.filter(pk=run.pk).update(members_total=total, rows_skipped=total - rows)
    name = f"exports/{now:%Y/%m}/run-{run.pk}-{filename}"
    try:
        final = default_storage.path(name)
    except NotImplementedError:
        final = None
    if final is not None:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(temp, final)
        run.file.name = name
        local = final
    else:
        with open(temp, "rb") as fh:
            run.file.name = default_storage.save(name, File(fh, name=filename))
        local = temp
    run.file_size = os.path.getsize(local)
    ExportRun.objects.filter(pk=run.pk).update(file=run.file.name, file_size=run.file_size, rows_written=rows)
    return local, rows


def export_run(*, run_id: int, now: dt.datetime | None = None) -> ExportRun | None:
    """Execute a queued run; returns None when another worker claimed it first."""
    now = now or timezone.now()
    claimed = ExportRun.objects.filter(pk=run_id, status=ExportRun.Status.QUEUED).update(
        status=ExportRun.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    if claimed != 1:
        return None
    run = ExportRun.objects.select_related("export__segment", "job").get(pk=run_id)
    export = run.export
    if run.job_id:
        Job.objects.filter(pk=run.job_id).update(status=Job.Status.RUNNING, started_at=now)
    attempts = max(1, int(_setting("TESSERA_EXPORT_ATTEMPTS", 3)))
    backoff = float(_setting("TESSERA_EXPORT_RETRY_BACKOFF", 5))
    filename = None
    local = None
    rows = 0
    error = ""
    try:
        filename = filename_render(export=export, when=now, run_id=run.pk)
        counts = {} if _reads_membership_directly(export) else export_snapshot(run=run, export=export, now=now)
        ExportRun.objects.filter(pk=run.pk).update(filename=filename, **counts)
    except Exception as exc:
        logger.exception("Export run %s could not start", run.pk)
        return _run_fail(run=run, error=f"{exc.__class__.__name__}: {exc}", attempts=1)
    beat_every = min(10.0, max(0.5, int(_setting("TESSERA_EXPORT_STALE_SECONDS", 300)) / 5))
    with _Heartbeat(run, beat_every) as heartbeat:
        for attempt in range(1, attempts + 1):
            ExportRun.objects.filter(pk=run.pk).update(attempts=attempt, heartbeat_at=timezone.now())
            try:
                if local is None:
                    local, rows = _write_internal(
                        run=run, export=export, filename=filename, now=now, progress=heartbeat
                    )
                where = destinations.deliver(
                    export=export,
                    run=run,
                    path=local,
                    filename=filename,
                    remember_temp=lambda p: _remember_temp(run, p),
                )
            except Exception as exc:
                error = str(exc) if isinstance(exc, destinations.DeliveryError) else f"{exc.__class__.__name__}: {exc}"
                logger.warning("Export run %s attempt %s/%s failed: %s", run.pk, attempt, attempts, error)
                if attempt < attempts:
                    time.sleep(backoff * 2 ** (attempt - 1))
                continue
            break
        else:
            return _run_fail(run=run, error=error, attempts=attempts)
    return _run_succeed(run=run, rows=rows, where=where, attempts=attempt)


def _run_succeed(*, run: ExportRun, rows: int, where: str, attempts: int) -> ExportRun:
    now = timezone.now()
    warning = EMPTY_WARNING if rows == 0 else ""
    with transaction.atomic():
        ExportRun.objects.filter(pk=run.pk).update(
            status=ExportRun.Status.SUCCEEDED, finished_at=now, heartbeat_at=now, rows_written=rows,
            delivered_to=where[:1000], warning=warning, temp_paths=[], attempts=attempts,
        )  # fmt: skip
        Export.objects.filter(pk=run.export_id).update(consecutive_failures=0)
        # Only the last successful delta run's set is needed (the next delta's baseline); a full
        # run's snapshot (SQLite) was only its consistent read.
        stale = ExportedMember.objects.filter(run__export_id=run.export_id).exclude(
            run__status__in=[ExportRun.Status.QUEUED, ExportRun.Status.RUNNING]
        )
        if run.export.mode == Export.Mode.DELTA:
            stale = stale.exclude(run=run)
        stale.delete()
    run.refresh_from_db()
    if run.job_id:
        Job.objects.filter(pk=run.job_id).update(
            status=Job.Status.SUCCEEDED, finished_at=now, progress=rows, total=rows, result=_job_result(run)
        )
    return run


def _job_result(run: ExportRun) -> dict:
    return {
        "export_id": run.export_id,
        "run_id": run.pk,
        "rows_written": run.rows_written,
        "rows_skipped": run.rows_skipped,
        "rows_added": run.rows_added,
        "rows_removed": run.rows_removed,
        "filename": run.filename,
        "warning": run.warning,
        "download": f"/api/exports/{run.export_id}/runs/{run.pk}/download/" if run.file else None,
    }


def _run_fail(*, run: ExportRun, error: str, attempts: int) -> ExportRun:
    """Mark the run failed, drop its snapshot and temp files, count the failure (disable after 5)."""
    now = timezone.now()
    fresh = ExportRun.objects.filter(pk=run.pk).values_list("temp_paths", flat=True).first() or []
    _remove_temps(fresh)
    with transaction.atomic():
        ExportRun.objects.filter(pk=run.pk).update(
            status=ExportRun.Status.FAILED, finished_at=now, error=error[:10000], temp_paths=[], attempts=attempts
        )
        ExportedMember.objects.filter(run=run).delete()
        Export.objects.filter(pk=run.export_id).update(consecutive_failures=F("consecutive_failures") + 1)
    run.refresh_from_db()
    if run.job_id:
        Job.objects.filter(pk=run.job_id).update(
            status=Job.Status.FAILED, finished_at=now, result=_job_result(run), errors=[{"message": error}]
        )
    export = Export.objects.select_related("owner", "periodic_task").get(pk=run.export_id)
    if export.enabled and export.consecutive_failures >= FAILURES_BEFORE_DISABLE:
        _export_disable(export=export, last_error=error)
    return run


def _export_disable(*, export: Export, last_error: str) -> None:
    export.enabled = False
    Export.objects.filter(pk=export.pk).update(enabled=False)
    schedules.schedule_sync(export=export)
    if export.owner and export.owner.email:
        send_mail(
            subject=f"[Tessera] Export “{export.name}” disabled after {export.consecutive_failures} failed runs",
            message=(
                f"The export “{export.name}” of segment “{export.segment.name}” failed "
                f"{export.consecutive_failures} times in a row and has been disabled.\n\n"
                f"Last error: {last_error}\n\nFix the destination and enable the export again in the admin."
            ),
            from_email=None,
            recipient_list=[export.owner.email],
            fail_silently=True,
        )


def export_scheduled_run(*, export_id: int) -> ExportRun | None:
    """What beat triggers: claim a run unless one is active, and execute it here."""
    export = Export.objects.filter(pk=export_id, enabled=True).first()
    if export is None:
        return None
    try:
        run = export_run_start(export=export, trigger=ExportRun.Trigger.SCHEDULE, enqueue=False)
    except ExportRunActive:
        logger.info("Export %s: scheduled run skipped, a run is still active", export_id)
        return None
    return export_run(run_id=run.pk)


def export_runs_reap(*, now: dt.datetime | None = None) -> int:
    """Fail runs whose worker stopped (no heartbeat) or that never started; remove their temp files."""
    now = now or timezone.now()
    stale = dt.timedelta(seconds=int(_setting("TESSERA_EXPORT_STALE_SECONDS", 300)))
    queued = dt.timedelta(seconds=int(_setting("TESSERA_EXPORT_QUEUED_TIMEOUT", 3600)))
    reaped = 0
    for run in ExportRun.objects.filter(status=ExportRun.Status.RUNNING, heartbeat_at__lt=now - stale):
        # Compare-and-set on the heartbeat we saw, so a run that just came back to life is left alone.
        if ExportRun.objects.filter(pk=run.pk, status=run.status, heartbeat_at=run.heartbeat_at).update(
            heartbeat_at=now
        ):
            _run_fail(run=run, error="The worker stopped responding; the run was abandoned.", attempts=run.attempts)
            reaped += 1
    for run in ExportRun.objects.filter(status=ExportRun.Status.QUEUED, created_at__lt=now - queued):
        if ExportRun.objects.filter(pk=run.pk, status=ExportRun.Status.QUEUED).update(
            status=ExportRun.Status.RUNNING, heartbeat_at=now
        ):
            _run_fail(run=run, error="The run was never picked up by a worker.", attempts=0)
            reaped += 1
    return reaped


def export_files_cleanup(*, now: dt.datetime | None = None) -> int:
    """Delete stored run files older than TESSERA_EXPORT_RETENTION_DAYS; the run records stay."""
    now = now or timezone.now()
    days = int(_setting("TESSERA_EXPORT_RETENTION_DAYS", 30))
    removed = 0
    for run in ExportRun.objects.filter(finished_at__lt=now - dt.timedelta(days=days)).exclude(file=""):
        run.file.delete(save=False)
        ExportRun.objects.filter(pk=run.pk).update(file="")
        removed += 1
    return removed
