"""Members of static and external segments, added and removed by id (decisions 30, 31)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from array import array
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from customers.models import Customer, CustomerIdentity, Tag
from segmentation.models import LedgerEntry, Membership, Reason, Segment, Snapshot

from .apply import membership_apply
from .errors import SegmentConflict, SegmentInvalid

logger = logging.getLogger(__name__)

MAX_IDS = 10_000
CHUNK = 1_000


def customers_resolve(ids: list[str]) -> tuple[dict[str, int], list[str]]:
    """Map external ids (or `id:<pk>`, or an aliased previous user id) to customer pks.

    Returns ({given id: pk}, [unknown ids in the given order]). External ids are exact
    (decisions 17).
    """
    found: dict[str, int] = {}
    by_pk = {i: i[3:] for i in ids if i.startswith("id:")}
    pks = {int(v) for v in by_pk.values() if v.isdigit()}
    existing = set()
    for start in range(0, len(pks), CHUNK):
        chunk = list(pks)[start : start + CHUNK]
        existing |= set(Customer.objects.filter(pk__in=chunk).values_list("pk", flat=True))
    for given, raw in by_pk.items():
        if raw.isdigit() and int(raw) in existing:
            found[given] = int(raw)
    external = [i for i in ids if i not in by_pk]
    for start in range(0, len(external), CHUNK):
        chunk = external[start : start + CHUNK]
        found.update(Customer.objects.filter(external_id__in=chunk).values_list("external_id", "pk"))
        rest = [i for i in chunk if i not in found]
        if rest:
            found.update(
                CustomerIdentity.objects.filter(kind=CustomerIdentity.Kind.ALIAS, value__in=rest).values_list(
                    "value", "customer_id"
                )
            )
    return found, [i for i in ids if i not in found]


def customer_search_filter(params) -> Q:
    """The admin manual page's search: prefix match on external id, email and names, plus filters.

    On PostgreSQL the external id and email prefixes use the `*_like` (pattern ops) indexes
    Django adds to indexed text columns; names are not indexed, so a name search filters while
    walking the primary key and stops at the page size (fast when matches are common).
    """
    q = Q()
    text = (params.get("q") or "").strip()
    if text:
        if text.startswith("id:") and text[3:].isdigit():
            q &= Q(pk=int(text[3:]))
        elif "@" in text:
            q &= Q(email__startswith=text.lower())
        else:
            q &= (
                Q(external_id__startswith=text)
                | Q(email__startswith=text.lower())
                | Q(first_name__istartswith=text)
                | Q(last_name__istartswith=text)
            )
    if params.get("country"):
        q &= Q(country=params["country"].strip().upper())
    if params.get("tag"):
        q &= Q(
            Exists(Tag.customers.through.objects.filter(customer_id=OuterRef("pk"), tag__name__iexact=params["tag"]))
        )
    return q


def _clean_ids(segment: Segment, external_ids) -> list[str]:
    if segment.kind == Segment.Kind.DYNAMIC:
        raise SegmentConflict("Members of an auto-update segment follow its definition; they cannot be edited.")
    if not isinstance(external_ids, list) or not external_ids:
        raise SegmentInvalid({"external_ids": "Send a non-empty list of external ids."})
    if len(external_ids) > MAX_IDS:
        raise SegmentInvalid({"external_ids": f"Send at most {MAX_IDS:,} ids per request."})
    clean = []
    for value in external_ids:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SegmentInvalid({"external_ids": "Each id must be a string."})
        value = str(value).strip()
        if value and value not in clean:
            clean.append(value)
    return clean


def _change(*, segment: Segment, external_ids, reason: str, add: bool, detail: dict | None, customer_ids=None) -> dict:
    if customer_ids is not None:
        # The admin picks customers by primary key; report missing ones as `id:<pk>`.
        ids = _clean_ids(segment, [f"id:{int(pk)}" for pk in customer_ids])
    else:
        ids = _clean_ids(segment, external_ids)
    found, unknown = customers_resolve(ids)
    wanted = sorted(set(found.values()))
    now = timezone.now()
    with transaction.atomic():
        seg = Segment.objects.select_for_update().get(pk=segment.pk)
        current = set()
        for start in range(0, len(wanted), CHUNK):
            current |= set(
                Membership.objects.filter(segment=seg, customer_id__in=wanted[start : start + CHUNK]).values_list(
                    "customer_id", flat=True
                )
            )
        changed = [cid for cid in wanted if (cid not in current) == add]
        if changed:
            membership_apply(
                segment=seg,
                added=changed if add else [],
                removed=[] if add else changed,
                reason=reason,
                at=now,
                detail=detail,
                status=Segment.Status.READY,
                computed_at=now,
                last_error="",
            )
            from .recompute import dependents_reevaluate

            dependents_reevaluate(segment=seg, customer_ids=changed)
    segment.refresh_from_db()
    key = "added" if add else "removed"
    return {key: len(changed), "unchanged": len(wanted) - len(changed), "unknown": unknown}


def segment_members_add(
    *, segment: Segment, external_ids=None, customer_ids=None, reason: str = Reason.API, detail: dict | None = None
) -> dict:
    """Add customers by external id (or `id:<pk>`), or by `customer_ids`, to a static or external segment.

    Answers {"added", "unchanged", "unknown": [ids not found]}; unknown ids are not remembered.
    Segments that refer to this one re-check the changed customers.
    """
    return _change(
        segment=segment, external_ids=external_ids, customer_ids=customer_ids, reason=reason, add=True, detail=detail
    )


def segment_members_remove(
    *, segment: Segment, external_ids=None, customer_ids=None, reason: str = Reason.API, detail: dict | None = None
) -> dict:
    """Remove customers by external id (or `customer_ids`); answers {"removed", "unchanged", "unknown"}."""
    return _change(
        segment=segment, external_ids=external_ids, customer_ids=customer_ids, reason=reason, add=False, detail=detail
    )


# ------------------------------------------------------------------------------
# Large manual changes, run by a job (admin "add all results" and CSV uploads)
# ------------------------------------------------------------------------------
# Rows per chunk transaction. Each chunk is one INSERT ... SELECT plus its ledger rows, so the
# segment lock is held for one chunk only and progress moves every chunk.
SET_CHUNK = 20_000
# IN lists of matched CSV ids stay below SQLite's 32,766 bound parameters.
IDS_CHUNK = 10_000


def members_add_set(*, segment: Segment, queryset, reason: str = Reason.MANUAL, detail: dict | None = None) -> int:
    """Add every customer `queryset` selects (a Customer queryset) to a static/external segment.

    One transaction and one set statement: `INSERT ... SELECT` of the non-members, with their
    `entered` ledger rows and one snapshot, like `segment_members_add` for the same customers.
    Returns the number added. Meant for bounded chunks; callers loop (`segment_members_job_run`).
    """
    from .recompute import dependents_reevaluate
    from .sql import _prep, _tables

    membership, ledger = _tables()
    # An explicit alias: SQLite does not name a derived table's column after the selected one.
    sql, params = queryset.order_by().annotate(member_id=F("pk")).values_list("member_id").query.sql_with_params()
    pk = "member_id"
    now = timezone.now()
    at_db = _prep(Membership, "entered_at", now)
    detail_db = _prep(LedgerEntry, "detail", detail or {})
    cols = "segment_id, customer_id, change, at, reason, detail, snapshot_id"
    not_member = f"NOT EXISTS (SELECT 1 FROM {membership} m WHERE m.segment_id = %s AND m.customer_id = c.{pk})"
    with transaction.atomic():
        seg = Segment.objects.select_for_update().get(pk=segment.pk)
        if seg.kind == Segment.Kind.DYNAMIC:
            raise SegmentConflict("Members of an auto-update segment follow its definition; they cannot be edited.")
        snapshot = Snapshot.objects.create(
            segment=seg, version=seg.applied_version, reason=reason, started_at=now, finished_at=now, size=0
        )
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                cur.execute(
                    f"WITH new AS (INSERT INTO {membership} (segment_id, customer_id, entered_at) "
                    f"SELECT %s, c.{pk}, %s FROM ({sql}) c WHERE {not_member} RETURNING customer_id) "
                    f"INSERT INTO {ledger} ({cols}) SELECT %s, customer_id, 'entered', %s, %s, %s, %s FROM new",
                    [seg.pk, at_db, *params, seg.pk, seg.pk, at_db, reason, detail_db, snapshot.pk],
                )
                added = cur.rowcount
            else:
                # SQLite has no data-modifying CTE: ledger rows first, then the same anti-join.
                cur.execute(
                    f"INSERT INTO {ledger} ({cols}) SELECT %s, c.{pk}, 'entered', %s, %s, %s, %s "
                    f"FROM ({sql}) c WHERE {not_member}",
                    [seg.pk, at_db, reason, detail_db, snapshot.pk, *params, seg.pk],
                )
                added = cur.rowcount
                if added:
                    cur.execute(
                        f"INSERT INTO {membership} (segment_id, customer_id, entered_at) "
                        f"SELECT %s, c.{pk}, %s FROM ({sql}) c WHERE {not_member}",
                        [seg.pk, at_db, *params, seg.pk],
                    )
        if not added:
            snapshot.delete()
            return 0
        size = seg.member_count + added
        Snapshot.objects.filter(pk=snapshot.pk).update(size=size, entered=added)
        Segment.objects.filter(pk=seg.pk).update(
            member_count=size, status=Segment.Status.READY, computed_at=now, last_error=""
        )
        seg.member_count = size
        dependents_reevaluate(segment=seg, snapshot_id=snapshot.pk)
    return added


def _search_chunks(queryset):
    """(chunk queryset, rows in it) walking `queryset` in primary-key ranges of SET_CHUNK rows.

    Each boundary is one keyset step (`pk > last ORDER BY pk OFFSET SET_CHUNK-1 LIMIT 1`), an index
    range scan; customers created during the job after the last boundary are included.
    """
    last = 0
    while True:
        rest = queryset.filter(pk__gt=last)
        bound = list(rest.order_by("pk").values_list("pk", flat=True)[SET_CHUNK - 1 : SET_CHUNK])
        if not bound:
            chunk = rest
            yield chunk, chunk.count()
            return
        yield rest.filter(pk__lte=bound[0]), SET_CHUNK
        last = bound[0]


def _id_chunks(customer_ids: list[int]):
    postgres = connection.vendor == "postgresql"
    size = SET_CHUNK if postgres else IDS_CHUNK
    for start in range(0, len(customer_ids), size):
        ids = customer_ids[start : start + size]
        if postgres:
            # One array parameter instead of an IN list: compiling 10,000 placeholders a chunk was
            # a fifth of the job's CPU at 1M ids (bench/members.py).
            yield Customer.objects.filter(pk__in=RawSQL("SELECT unnest(%s::bigint[])", [ids])), len(ids)
        else:
            yield Customer.objects.filter(pk__in=ids), len(ids)


def segment_members_job_create(*, segment: Segment, user, search: dict | None = None, customer_ids=None, total=None):
    """Queue a large manual add as a `members` job; the task starts after commit.

    Either `search` (the admin's customer search, re-run by the job) or `customer_ids`
    (matched CSV rows) selects the customers. The ids go to a file under MEDIA_ROOT/members/
    (8 bytes each; web and worker share MEDIA_ROOT as for imports), not into the job's params,
    which the job list loads with every row; the job deletes the file when it ends.
    """
    from segmentation.tasks import segment_members_job_task

    from .jobs import MEMBERS, job_create

    params: dict = {"segment_id": segment.pk, "reason": Reason.MANUAL}
    if search is not None:
        params["search"] = search
    else:
        ids = sorted(set(customer_ids))
        params.update(ids_file=_ids_store(ids), count=len(ids))
    job = job_create(kind=MEMBERS, params=params, created_by=user, total=total)
    transaction.on_commit(lambda: segment_members_job_task.delay(job.pk))
    return job


def segment_members_job_run(*, job_id: int) -> dict | None:
    """Run a `members` job: add its customers chunk by chunk, reporting progress on the job.

    Each chunk is atomic (its members, ledger rows, snapshot and count commit together); the
    whole job is not: on an error the chunks already done stay applied, the job is marked
    failed with the error and the counts so far, and running the same change again adds only
    the rest. Returns the result, or None when the job was not queued (claimed elsewhere).
    """
    from customers.models import Job

    from .jobs import job_finish, job_progress, job_start

    job = Job.objects.filter(pk=job_id).first()
    if job is None or not job_start(job_id):
        return None
    params = job.params
    result = {"segment_id": params.get("segment_id"), "added": 0, "unchanged": 0, "member_count": None}
    done = total = 0
    try:
        segment = Segment.objects.filter(pk=params.get("segment_id")).first()
        if segment is None:
            raise SegmentConflict("The segment no longer exists.")
        if "search" in params:
            queryset = Customer.objects.filter(customer_search_filter(params["search"]))
            total = queryset.count()
            chunks = _search_chunks(queryset)
        else:
            ids = _ids_load(params["ids_file"])
            total = len(ids)
            chunks = _id_chunks(ids)
        job_progress(job_id, progress=0, total=total)
        for chunk, rows in chunks:
            added = members_add_set(segment=segment, queryset=chunk, reason=params.get("reason", Reason.MANUAL))
            done += rows
            result["added"] += added
            result["unchanged"] += rows - added
            job_progress(job_id, progress=done)
    except Exception as exc:  # any failure ends the job with the error shown to the marketer
        logger.exception("members job %s failed", job_id)
        result["member_count"] = (
            Segment.objects.filter(pk=params.get("segment_id")).values_list("member_count", flat=True).first()
        )
        job_finish(job_id, result=result, errors=[{"message": _error_text(exc)}], progress=done)
        return result
    finally:
        if params.get("ids_file"):
            Path(params["ids_file"]).unlink(missing_ok=True)
    segment.refresh_from_db(fields=["member_count"])
    result["member_count"] = segment.member_count
    job_finish(job_id, result=result, progress=max(done, total))
    return result


# A members job adds about 35,000 customers per CPU-second (bench/RESULTS.md), so an hour covers
# far more than any real selection; a job queued or running longer than that lost its worker.
MEMBERS_JOB_STALE_SECONDS = 60 * 60


def members_jobs_reap(*, now=None) -> list[int]:
    """Fail `members` jobs whose worker died or never came (the watchdog calls this).

    The chunks a dead job applied stay applied (each was atomic); the message says so, and the
    stored id file of a CSV job is removed. Claimed by compare-and-set, so two watchdogs agree.
    """
    from customers.models import Job

    from .jobs import MEMBERS

    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=MEMBERS_JOB_STALE_SECONDS)
    stale = Job.objects.filter(kind=MEMBERS).filter(
        Q(status=Job.Status.RUNNING, started_at__lt=cutoff) | Q(status=Job.Status.QUEUED, created_at__lt=cutoff)
    )
    reaped = []
    for job in stale:
        if job.status == Job.Status.RUNNING:
            message = (
                "The worker stopped before the job finished. The customers added so far stay in the "
                "segment; make the same change again to add the rest."
            )
        else:
            message = "No worker picked up the job within an hour; nothing was added. Make the change again."
        claimed = Job.objects.filter(pk=job.pk, status=job.status).update(
            status=Job.Status.FAILED, errors=[{"message": message}], finished_at=now
        )
        if claimed:
            if job.params.get("ids_file"):
                Path(job.params["ids_file"]).unlink(missing_ok=True)
            reaped.append(job.pk)
    if reaped:
        logger.warning("Reaped stale members jobs: %s", ", ".join(map(str, reaped)))
    return reaped


def _ids_store(ids: list[int]) -> str:
    folder = Path(settings.MEDIA_ROOT) / "members" / timezone.now().strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.ids"
    path.write_bytes(array("q", ids).tobytes())
    return str(path)


def _ids_load(path: str) -> list[int]:
    ids = array("q")
    ids.frombytes(Path(path).read_bytes())
    return ids.tolist()


def _error_text(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return str(message or exc or exc.__class__.__name__)
