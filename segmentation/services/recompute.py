"""Keeping memberships current: full recomputes, sweeps, the watchdog (decisions 26–29).

A full recompute stages the definition's member set in SQL and applies the difference in ONE
transaction (`sql.apply_staged`). Runs are versioned: requesting a recompute bumps
`Segment.version` with F(); a run carries the version it was requested for and skips when a
newer one exists or its version was already applied. Applies to one segment are serialised
by the compare-and-set on `applied_version`, which is also the row lock on PostgreSQL (an
UPDATE waits for a concurrent one and re-checks its WHERE) and runs inside SQLite's
`BEGIN IMMEDIATE` write lock. The member set is computed while that lock is held, so any
incremental re-evaluation of a customer touched meanwhile waits and then sees the new state:
nothing a full run computed can overwrite a later change (decisions 27).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from customers.models import Customer
from segmentation.models import Membership, Reason, Segment, Snapshot
from segmentation.selectors import segments_in_dependency_levels

from .jobs import job_finish, job_progress, job_start
from .sql import apply_staged, recompute_session, stage_drop, stage_members, stage_replace

logger = logging.getLogger(__name__)

# Above this many changed customers a dependent is recomputed whole rather than customer by customer.
DEPENDENT_INCREMENTAL_LIMIT = 10_000
WATCHDOG_MIN_SECONDS = 10 * 60


class _Stale(Exception):
    pass


def _on_commit(fn) -> None:
    # robust: a broker hiccup must not turn a committed write into an error for the caller; the
    # periodic sweeps catch up with anything that was not enqueued.
    transaction.on_commit(fn, robust=True)


def segment_request_recompute(*, segment: Segment, reason: str, job_id: int | None = None, enqueue: bool = True) -> int:
    """Ask for a recompute: bump the version and (after commit) enqueue the run. Returns the version."""
    with transaction.atomic():
        # One transaction: the row stays locked (PostgreSQL) or the database write-locked (SQLite)
        # between the bump and the read, so concurrent requests each read their own version.
        Segment.objects.filter(pk=segment.pk).update(version=F("version") + 1)
        version = Segment.objects.values_list("version", flat=True).get(pk=segment.pk)
    segment.version = version
    if enqueue:
        from segmentation.tasks import segment_recompute_task

        segment_id = segment.pk
        _on_commit(lambda: segment_recompute_task.delay(segment_id, version, reason, job_id))
    return version


def segment_recompute_start(*, segment: Segment, user=None, reason: str = Reason.MANUAL) -> object:
    """On-demand recompute (API, admin): a Job to poll, the run enqueued after commit."""
    from .jobs import job_create

    with transaction.atomic():
        job = job_create(params={"segment": segment.key, "segment_id": segment.pk}, created_by=user, total=1)
        segment_request_recompute(segment=segment, reason=reason, job_id=job.pk)
    return job


def dependencies_waiting(segment: Segment) -> list[str]:
    """Keys of referenced dynamic segments that were never computed (the segment waits for them)."""
    keys = (segment.dependencies or {}).get("segments") or []
    if not keys:
        return []
    rows = Segment.objects.annotate(lkey=Lower("key")).filter(
        lkey__in=[k.lower() for k in keys], kind=Segment.Kind.DYNAMIC, computed_at__isnull=True
    )
    return sorted(rows.values_list("key", flat=True))


def _result(segment: Segment, version: int, status: str, **extra) -> dict:
    return {"segment": segment.key, "segment_id": segment.pk, "version": version, "status": status, **extra}


def segment_recompute(
    *, segment_id: int, version: int, reason: str = Reason.SCHEDULED, now=None, batch_keys: set[str] | None = None
) -> dict:
    """Recompute one dynamic segment for `version` and apply the difference atomically.

    Returns {"status": "applied" | "skipped", "entered", "exited", "size", ...}. A failure marks
    the segment `failed` with the error (its last membership stays) and re-raises for the retry.
    `batch_keys` (lower-cased) are segments the caller recomputes next anyway, in dependency
    order: their re-evaluation is not requested again.
    """
    from segmentation.engine import compile_definition

    now = now or timezone.now()
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        return {"segment_id": segment_id, "version": version, "status": "skipped", "why": "deleted"}
    if segment.kind != Segment.Kind.DYNAMIC:
        return _result(segment, version, "skipped", why="not an auto-update segment")
    if segment.version > version or segment.applied_version >= version:
        return _result(segment, version, "skipped", why=f"superseded by version {segment.version}")
    waiting = dependencies_waiting(segment)
    if waiting:
        return _result(segment, version, "skipped", why="waiting for referenced segments", waiting=waiting)
    first_time = segment.computed_at is None
    Segment.objects.filter(pk=segment.pk, version=version).update(
        status=Segment.Status.COMPUTING, computing_started_at=timezone.now()
    )
    started = time.monotonic()
    try:
        with transaction.atomic():
            # The compare-and-set claim: first statement of the transaction, so the row lock
            # (PostgreSQL) or the write lock (SQLite) is held until the difference is applied.
            claimed = Segment.objects.filter(pk=segment.pk, version=version, applied_version__lt=version).update(
                applied_version=version
            )
            if not claimed:
                raise _Stale
            recompute_session()
            size = stage_members(Customer.objects.filter(compile_definition(segment.definition, now=now)))
            size += _recheck_touched(segment, now)
            snapshot = Snapshot.objects.create(
                segment=segment, version=version, reason=reason, started_at=now, finished_at=now, size=0
            )
            counts = apply_staged(
                segment_id=segment.pk,
                at=now,
                reason=reason,
                detail={"version": version},
                snapshot_id=snapshot.pk,
                size=size,
            )
            stage_drop()
            duration_ms = int((time.monotonic() - started) * 1000)
            Snapshot.objects.filter(pk=snapshot.pk).update(
                size=counts["size"],
                entered=counts["entered"],
                exited=counts["exited"],
                duration_ms=duration_ms,
                finished_at=now + timezone.timedelta(milliseconds=duration_ms),
            )
            Segment.objects.filter(pk=segment.pk).update(
                status=Segment.Status.READY,
                computed_at=now,
                member_count=counts["size"],
                last_error="",
                last_duration_ms=duration_ms,
                retry_count=0,
                computing_started_at=None,
            )
    except _Stale:
        return _result(segment, version, "skipped", why="a newer or identical run already applied")
    except Exception as exc:
        Segment.objects.filter(pk=segment.pk, version=version).update(
            status=Segment.Status.FAILED,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            computing_started_at=None,
            retry_count=F("retry_count") + 1,
        )
        raise
    if counts["entered"] or counts["exited"] or first_time:
        dependents_reevaluate(segment=segment, snapshot_id=snapshot.pk, first_time=first_time, exclude=batch_keys)
    return _result(segment, version, "applied", snapshot_id=snapshot.pk, duration_ms=duration_ms, **counts)


def _recheck_touched(segment: Segment, now) -> int:
    """Re-check customers touched since the run's `now` (decisions 27).

    A run evaluates at `now`, captured before it waited for the lock (or at the start of a
    sweep), and ignores events after it. An event newer than `now` whose incremental
    re-evaluation already applied would be undone: its customer's `last_seen_at` (indexed)
    is later than `now`, so those customers are evaluated again at the current time.
    Attribute changes need no re-check: the staged set already read them. Returns the change in
    the staged count.
    """
    from segmentation.engine import compile_definition

    current = timezone.now()
    if current <= now:
        return 0
    touched = Customer.objects.filter(last_seen_at__gt=now, last_seen_at__lte=current)
    q = compile_definition(segment.definition, now=current, customer_ids=touched.values("pk"))
    return stage_replace(touched=touched, matching=touched.filter(q))


# ------------------------------------------------------------------------------
# Dependents (decisions 26)
# ------------------------------------------------------------------------------
def dependents_reevaluate(
    *,
    segment: Segment,
    snapshot_id: int | None = None,
    customer_ids=None,
    first_time: bool = False,
    exclude: set[str] | None = None,
) -> None:
    """After `segment`'s membership changed, re-evaluate the segments that refer to it.

    Dependents never computed are recomputed whole once all their references are ready;
    computed ones re-evaluate only the changed customers (ledger rows of the snapshot), or
    recompute whole when that set is large. Enqueued after commit.
    """
    from segmentation.models import LedgerEntry
    from segmentation.tasks import segment_recompute_customers_task

    from .segments import segment_dependents

    dependents = [
        d for d in segment_dependents(key=segment.key, exclude_pk=segment.pk) if d.key.lower() not in (exclude or ())
    ]
    if not dependents:
        return
    if customer_ids is None and snapshot_id is not None:
        qs = LedgerEntry.objects.filter(snapshot_id=snapshot_id).values_list("customer_id", flat=True)
        customer_ids = list(qs[: DEPENDENT_INCREMENTAL_LIMIT + 1])
    customer_ids = sorted(set(customer_ids or []))
    incremental = []
    for dependent in dependents:
        if dependent.computed_at is None or len(customer_ids) > DEPENDENT_INCREMENTAL_LIMIT:
            if not dependencies_waiting(dependent):
                segment_request_recompute(segment=dependent, reason=Reason.DEPENDENCY)
        elif customer_ids:
            incremental.append(dependent.pk)
    if incremental:
        ids = customer_ids
        _on_commit(
            lambda: segment_recompute_customers_task.delay(
                ids, Reason.DEPENDENCY, {"segment": segment.key}, incremental
            )
        )


# ------------------------------------------------------------------------------
# Many segments: recompute-all, sweeps, watchdog (decisions 28, 29)
# ------------------------------------------------------------------------------
def segments_recompute_many(
    *, segments, reason: str = Reason.SCHEDULED, now=None, job_id: int | None = None, concurrency: int | None = None
) -> dict:
    """Recompute segments in dependency order, in this process.

    `now` is captured once for the whole run (decisions 6). A failing segment is marked
    `failed` and the others go on; it is tried again on the next sweep or save. Segments of one
    dependency level run on `concurrency` database connections at once (sweep_concurrency()).
    """
    now = now or timezone.now()
    levels = segments_in_dependency_levels(list(segments))
    batch_keys = {s.key.lower() for level in levels for s in level}
    job_start(job_id, total=len(batch_keys))
    workers = sweep_concurrency() if concurrency is None else concurrency
    results, errors = [], []

    def one(segment: Segment, threaded: bool) -> tuple[dict, dict | None]:
        try:
            version = segment_request_recompute(segment=segment, reason=reason, enqueue=False)
            try:
                return segment_recompute(
                    segment_id=segment.pk, version=version, reason=reason, now=now, batch_keys=batch_keys
                ), None
            except Exception as exc:  # never let one segment block the others
                logger.exception("Recompute of segment %s failed", segment.key)
                return _result(segment, version, "failed", error=str(exc)), {
                    "segment": segment.key,
                    "message": str(exc),
                }
        finally:
            if threaded:
                connection.close()  # this thread's own connection

    for level in levels:
        pool = None
        if workers > 1 and len(level) > 1:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segment-sweep")
            outcomes = pool.map(lambda s: one(s, True), level)
        else:
            outcomes = (one(s, False) for s in level)
        try:
            for result, error in outcomes:
                results.append(result)
                if error:
                    errors.append(error)
                job_progress(job_id, progress=len(results))
        finally:
            if pool is not None:
                pool.shutdown()
    summary = {"segments": results, "applied": sum(r["status"] == "applied" for r in results)}
    job_finish(job_id, result=summary, errors=errors, progress=len(results))
    return summary


def sweep_concurrency() -> int:
    """How many segments of one dependency level to recompute at once.

    PostgreSQL only (SQLite has one writer), and never inside a caller's transaction: the other
    connections could not see its uncommitted rows. TESSERA_SWEEP_CONCURRENCY (default 2, the
    cores of the reference machine): each recompute is one big query, so two of them keep two
    cores busy where one leaves the second idle during its single-threaded steps (bench/RESULTS.md).
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return 1
    return max(1, settings.TESSERA_SWEEP_CONCURRENCY)


def segments_sweep(*, scope: str = "all", now=None, job_id: int | None = None) -> dict:
    """Periodic sweep: `time` recomputes dynamic segments whose membership can change with time
    alone (plus failed and never-computed ones); `all` recomputes every dynamic segment."""
    segments = list(Segment.objects.filter(kind=Segment.Kind.DYNAMIC).order_by("key"))
    if scope == "all":
        members_recount(kinds=[Segment.Kind.STATIC, Segment.Kind.EXTERNAL])
    if scope == "time":
        segments = [
            s
            for s in segments
            if (s.dependencies or {}).get("time") or s.status == Segment.Status.FAILED or s.computed_at is None
        ]
    return segments_recompute_many(segments=segments, reason=Reason.SCHEDULED, now=now, job_id=job_id)


def members_recount(*, kinds) -> int:
    """Correct `member_count` of segments of these kinds in one statement (a safety net for counts
    moved outside the services, e.g. rows deleted by hand)."""
    counts = Membership.objects.filter(segment=OuterRef("pk")).order_by().values("segment").annotate(n=Count("pk"))
    return Segment.objects.filter(kind__in=kinds).update(member_count=Coalesce(Subquery(counts.values("n")), Value(0)))


def segments_watchdog(*, now=None) -> list[str]:
    """Requeue segments stuck in `computing` for more than 3 × their last duration (≥ 10 minutes)."""
    now = now or timezone.now()
    requeued = []
    for segment in Segment.objects.filter(status=Segment.Status.COMPUTING):
        limit = max(3 * (segment.last_duration_ms or 0) / 1000, WATCHDOG_MIN_SECONDS)
        started = segment.computing_started_at
        if started is not None and (now - started).total_seconds() <= limit:
            continue
        claimed = Segment.objects.filter(
            pk=segment.pk, status=Segment.Status.COMPUTING, computing_started_at=started
        ).update(status=Segment.Status.PENDING, computing_started_at=None)
        if claimed:
            segment_request_recompute(segment=segment, reason=Reason.SCHEDULED)
            requeued.append(segment.key)
    if requeued:
        logger.warning("Watchdog requeued stuck segments: %s", ", ".join(requeued))
    return requeued


def segments_sync_dependencies() -> int:
    """Re-classify every dynamic definition's dependencies (after migrations: pre-built segments
    are created by a data migration that cannot import the engine)."""
    from segmentation.engine import definition_dependencies

    changed = 0
    for segment in Segment.objects.filter(kind=Segment.Kind.DYNAMIC).exclude(definition=None):
        try:
            deps = definition_dependencies(segment.definition)
        except Exception:  # an old definition the engine no longer reads: leave it for the next save
            logger.exception("Cannot classify the dependencies of segment %s", segment.key)
            continue
        if deps != segment.dependencies:
            Segment.objects.filter(pk=segment.pk).update(dependencies=deps)
            changed += 1
    return changed
