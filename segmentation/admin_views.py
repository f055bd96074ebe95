"""Custom admin pages and the JSON endpoints behind the builder and the manual-members page.

Mounted by SegmentAdmin.get_urls() through admin_site.admin_view (staff only, CSRF-checked);
each view also checks the model permission it needs. Reads are plain read-only ORM queries;
every write goes through segmentation.services.

Lists here never COUNT(*) the customer table: pages are keyset-paged on the primary key
(`after=<id>`, one row more than the page to know whether there is a next one), which stays an
index range scan at a million customers.
"""

from __future__ import annotations

import csv
import io
import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from customers.models import Customer, Tag
from segmentation import builder_adapter, services
from segmentation.models import LedgerEntry, Membership, Reason, Segment, Snapshot
from segmentation.services.members import customer_search_filter as customer_filter

PAGE_SIZE = 25
MAX_PAGE_SIZE = 200
# The members API takes at most 10,000 ids per call (decisions 31); "add all results" and CSV
# uploads are fed to it in chunks of that size.
MEMBERS_CHUNK = 10_000
UPLOAD_MAX_ROWS = 1_000_000
UNMATCHED_REPORT_LIMIT = 1_000
SPARK_WIDTH, SPARK_HEIGHT = 320, 56


# The search fields "add all results" accepts (the page's search form).
SEARCH_KEYS = ("q", "country", "tag")


def inline_limit() -> int:
    """Selections larger than this (search results, matched CSV rows) are added by a job."""
    return settings.TESSERA_MANUAL_INLINE_LIMIT


def job_status_url(job_id: int) -> str:
    try:
        return reverse("job-detail", args=[job_id])
    except NoReverseMatch:
        return f"/api/jobs/{job_id}/"


class ServiceError(Exception):
    """A request the admin refuses before calling a service; the message is for the marketer."""


def error_message(exc: Exception) -> str:
    """One sentence for a service error (field errors and definition problems flattened)."""
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        return "; ".join(str(p.get("message", p)) if isinstance(p, dict) else str(p) for p in problems)
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    return getattr(exc, "message", None) or str(exc) or exc.__class__.__name__


def preview_url() -> str:
    """The REST preview endpoint the builder posts to (session auth + CSRF header)."""
    try:
        return reverse("segment-preview")
    except NoReverseMatch:
        return "/api/segments/preview/"


def segment_dependents(*, segment: Segment) -> list[Segment]:
    """Segments whose definitions refer to `segment` (they block its deletion, decisions 24)."""
    from segmentation.services.segments import segment_dependents as dependents

    return dependents(key=segment.key, exclude_pk=segment.pk)


def copy_suggestion(*, segment: Segment) -> tuple[str, str]:
    base = f"{segment.key[:58]}-copy"
    key, n = base, 2
    taken = {k.lower() for k in Segment.objects.filter(key__istartswith=base).values_list("key", flat=True)}
    while key.lower() in taken:
        key, n = f"{base}-{n}", n + 1
    return key, f"Copy of {segment.name}"[:200]


def sparkline(sizes: list[int]) -> dict | None:
    """SVG polyline points for sizes (oldest first); None with fewer than two points."""
    if len(sizes) < 2:
        return None
    low, high = min(sizes), max(sizes)
    span = (high - low) or 1
    step = SPARK_WIDTH / (len(sizes) - 1)
    pad = 4
    points = [
        (round(i * step, 1), round(pad + (SPARK_HEIGHT - 2 * pad) * (1 - (v - low) / span), 1))
        for i, v in enumerate(sizes)
    ]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"0,{SPARK_HEIGHT} {line} {SPARK_WIDTH},{SPARK_HEIGHT}"
    return {"line": line, "area": area, "width": SPARK_WIDTH, "height": SPARK_HEIGHT, "low": low, "high": high}


def _json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ServiceError("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ServiceError("The request body must be a JSON object.")
    return body


def _page_args(request) -> tuple[int, int | None]:
    try:
        size = max(1, min(MAX_PAGE_SIZE, int(request.GET.get("page_size", PAGE_SIZE))))
    except ValueError:
        size = PAGE_SIZE
    try:
        after = int(request.GET["after"]) if request.GET.get("after") else None
    except ValueError:
        after = None
    return size, after


def _customer_url(pk: int) -> str | None:
    # The customers admin is registered by another module; the pages work without it.
    try:
        return reverse("admin:customers_customer_change", args=[pk])
    except NoReverseMatch:
        return None


def _customer_row(c: Customer, **extra) -> dict:
    name = " ".join(p for p in (c.first_name, c.last_name) if p)
    return {
        "id": c.pk,
        "url": _customer_url(c.pk),
        "external_id": c.external_id,
        "email": c.email,
        "name": name,
        "country": c.country,
        "label": c.external_id or c.email or f"id:{c.pk}",
        **extra,
    }


CUSTOMER_FIELDS = ("id", "external_id", "email", "first_name", "last_name", "country")


class SegmentAdminViews:
    """Views bound to a SegmentAdmin (for its permissions and admin site context)."""

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site

    # -------------------------------------------------------------- helpers
    def _segment(self, request, pk, *, perm="view") -> Segment:
        segment = get_object_or_404(Segment, pk=pk)
        check = getattr(self.model_admin, f"has_{perm}_permission")
        if not check(request, segment):
            raise PermissionDenied
        return segment

    def _require(self, request, perm="view"):
        if not getattr(self.model_admin, f"has_{perm}_permission")(request):
            raise PermissionDenied

    def _context(self, request, segment, title):
        return {
            **self.admin_site.each_context(request),
            "opts": Segment._meta,
            "original": segment,
            "segment": segment,
            "title": title,
            "has_change_permission": self.model_admin.has_change_permission(request, segment),
            "has_add_permission": self.model_admin.has_add_permission(request),
        }

    @staticmethod
    def _manual_segment(segment: Segment):
        if segment.kind == Segment.Kind.DYNAMIC:
            raise Http404("Members of an auto-update segment follow its conditions.")

    # -------------------------------------------------------------- builder JSON
    def builder_meta(self, request):
        self._require(request)
        exclude = request.GET.get("exclude")
        return JsonResponse(builder_adapter.builder_meta(exclude_segment_id=int(exclude) if exclude else None))

    def builder_properties(self, request):
        self._require(request)
        event = request.GET.get("event", "")
        return JsonResponse({"event": event, "properties": builder_adapter.builder_property_names(event=event)})

    # -------------------------------------------------------------- pages
    def overview(self, request, pk):
        segment = self._segment(request, pk)
        sizes = list(
            Snapshot.objects.filter(segment=segment).order_by("-finished_at", "-id").values_list("size", flat=True)[:90]
        )[::-1]
        summary = ""
        if segment.definition is not None:
            try:
                from segmentation.engine import summarize

                summary = summarize(segment.definition)
            except Exception:  # an unreadable stored definition must not hide the page
                summary = "(this definition cannot be summarised)"
        size, after = _page_args(request)
        q = (request.GET.get("q") or "").strip()
        members = self._members_page(segment, q=q, size=size, after=after)
        ledger = (
            LedgerEntry.objects.filter(segment=segment)
            .select_related("customer")
            .only("at", "change", "reason", "detail", "customer__external_id", "customer__email")[:20]
        )
        context = self._context(request, segment, segment.name)
        context.update(
            summary=summary,
            spark=sparkline(sizes),
            snapshots=sizes,
            members=members,
            q=q,
            ledger=ledger,
            tags=list(segment.tags.values_list("name", flat=True)),
            manual=segment.kind != Segment.Kind.DYNAMIC,
            time_zone=timezone.get_current_timezone_name(),
            dependents=segment_dependents(segment=segment),
        )
        return TemplateResponse(request, "admin/segmentation/segment/overview.html", context)

    def members_page(self, request, pk):
        segment = self._segment(request, pk)
        self._manual_segment(segment)
        context = self._context(request, segment, f"Members of {segment.name}")
        context.update(
            config={
                "searchUrl": reverse("admin:segmentation_segment_customer_search") + f"?segment={segment.pk}",
                "membersUrl": reverse("admin:segmentation_segment_members_data", args=[segment.pk]),
                "addUrl": reverse("admin:segmentation_segment_members_add", args=[segment.pk]),
                "removeUrl": reverse("admin:segmentation_segment_members_remove", args=[segment.pk]),
                "uploadUrl": reverse("admin:segmentation_segment_members_upload", args=[segment.pk]),
                "canChange": self.model_admin.has_change_permission(request, segment) and not segment.prebuilt,
                "pageSize": PAGE_SIZE,
            },
            tags=list(Tag.objects.order_by("name").values_list("name", flat=True)[:500]),
        )
        return TemplateResponse(request, "admin/segmentation/segment/members.html", context)

    def copy(self, request, pk):
        segment = self._segment(request, pk)
        self._require(request, "add")
        key, name = copy_suggestion(segment=segment)
        error = None
        if request.method == "POST":
            key = (request.POST.get("key") or "").strip()
            name = (request.POST.get("name") or "").strip()
            try:
                copy = services.segment_copy(segment=segment, key=key, name=name, owner=request.user)
            except services.SegmentError as exc:
                error = error_message(exc)
            else:
                messages.success(request, f"Copied “{segment.name}” as “{copy.name}”.")
                return HttpResponseRedirect(reverse("admin:segmentation_segment_change", args=[copy.pk]))
        context = self._context(request, segment, f"Copy {segment.name}")
        context.update(key=key, name=name, error=error)
        return TemplateResponse(request, "admin/segmentation/segment/copy.html", context)

    def recompute(self, request, pk):
        segment = self._segment(request, pk, perm="change")
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:segmentation_segment_overview", args=[pk]))
        if segment.kind != Segment.Kind.DYNAMIC:
            messages.info(request, "Static and external segments are always current.")
        else:
            services.segment_recompute_start(segment=segment, user=request.user)
            messages.success(request, "Recompute queued; the page shows the new size when it is done.")
        return HttpResponseRedirect(reverse("admin:segmentation_segment_overview", args=[pk]))

    # -------------------------------------------------------------- manual members JSON
    def _members_page(self, segment, *, q: str, size: int, after: int | None) -> dict:
        rows = Membership.objects.filter(segment=segment)
        if q:
            rows = rows.filter(customer__in=Customer.objects.filter(customer_filter({"q": q})))
        if after is not None:
            rows = rows.filter(customer_id__gt=after)
        page = list(
            rows.order_by("customer_id")
            .select_related("customer")
            .only("entered_at", "customer_id", *(f"customer__{f}" for f in CUSTOMER_FIELDS))[: size + 1]
        )
        has_next = len(page) > size
        page = page[:size]
        results = [
            _customer_row(
                m.customer,
                entered_at=m.entered_at.isoformat(),
                entered=timezone.localtime(m.entered_at).strftime("%Y-%m-%d %H:%M"),
            )
            for m in page
        ]
        return {
            "results": results,
            "has_next": has_next,
            "next_after": page[-1].customer_id if has_next else None,
            "total": segment.member_count,
        }

    def customer_search(self, request):
        self._require(request)
        size, after = _page_args(request)
        qs = Customer.objects.filter(customer_filter(request.GET))
        if after is not None:
            qs = qs.filter(pk__gt=after)
        segment_id = request.GET.get("segment")
        if segment_id and segment_id.isdigit():
            qs = qs.annotate(
                is_member=Exists(Membership.objects.filter(segment_id=int(segment_id), customer_id=OuterRef("pk")))
            )
        page = list(qs.order_by("pk").only(*CUSTOMER_FIELDS)[: size + 1])
        has_next = len(page) > size
        page = page[:size]
        results = [_customer_row(c, member=bool(getattr(c, "is_member", False))) for c in page]
        return JsonResponse({"results": results, "has_next": has_next, "next_after": page[-1].pk if has_next else None})

    @staticmethod
    def _json_error(message, status=400):
        return JsonResponse({"code": "invalid", "message": message, "errors": []}, status=status)

    def members_data(self, request, pk):
        segment = self._segment(request, pk)
        size, after = _page_args(request)
        return JsonResponse(self._members_page(segment, q=(request.GET.get("q") or "").strip(), size=size, after=after))

    def _change_members(self, request, pk, service: str):
        segment = self._segment(request, pk, perm="change")
        self._manual_segment(segment)
        if segment.prebuilt:
            raise PermissionDenied
        try:
            body = _json_body(request)
        except ServiceError as exc:
            return self._json_error(str(exc))
        if isinstance(body.get("search"), dict) and service == "segment_members_add":
            search = {k: str(v) for k, v in body["search"].items() if k in SEARCH_KEYS and v}
            qs = Customer.objects.filter(customer_filter(search)).filter(
                ~Exists(Membership.objects.filter(segment=segment, customer_id=OuterRef("pk")))
            )
            # Bounded count: a subquery with LIMIT, so a million matches cost no more than the limit.
            limit = inline_limit()
            if qs.values("pk")[: limit + 1].count() > limit:
                job = services.segment_members_job_create(segment=segment, user=request.user, search=search)
                return self._job_response(segment, job)
            ids = qs.order_by("pk").values_list("pk", flat=True)
        else:
            raw = body.get("ids")
            if not isinstance(raw, list) or not all(isinstance(i, int) for i in raw):
                return self._json_error("Send {'ids': [customer ids]} or {'search': {...}}.")
            ids = raw
        try:
            totals = self._apply_in_chunks(segment, ids, service=service)
        except services.SegmentError as exc:
            return self._json_error(error_message(exc), status=409)
        segment.refresh_from_db(fields=["member_count"])
        return JsonResponse({**totals, "member_count": segment.member_count})

    @staticmethod
    def _apply_in_chunks(segment, ids, *, service: str) -> dict:
        totals = {"changed": 0, "unchanged": 0}
        key = "added" if service == "segment_members_add" else "removed"
        chunk: list[int] = []

        def flush():
            result = getattr(services, service)(segment=segment, customer_ids=list(chunk), reason=Reason.MANUAL)
            totals["changed"] += _count(result.get(key))
            totals["unchanged"] += _count(result.get("unchanged"))
            chunk.clear()

        for customer_id in ids.iterator(chunk_size=MEMBERS_CHUNK) if hasattr(ids, "iterator") else ids:
            chunk.append(customer_id)
            if len(chunk) >= MEMBERS_CHUNK:
                flush()
        if chunk:
            flush()
        return {key: totals["changed"], "unchanged": totals["unchanged"]}

    def members_add(self, request, pk):
        return self._change_members(request, pk, "segment_members_add")

    def members_remove(self, request, pk):
        return self._change_members(request, pk, "segment_members_remove")

    def members_upload(self, request, pk):
        """CSV of members by external_id or email; unmatched rows are reported, not remembered."""
        segment = self._segment(request, pk, perm="change")
        self._manual_segment(segment)
        if segment.prebuilt:
            raise PermissionDenied
        upload = request.FILES.get("file")
        if upload is None:
            return self._json_error("Choose a CSV file with an external_id or email column.")
        try:
            matched, unmatched, total_unmatched = csv_match_customers(upload)
        except ServiceError as exc:
            return self._json_error(str(exc))
        report = {"matched": len(matched), "unmatched": unmatched, "unmatched_count": total_unmatched}
        if len(matched) > inline_limit():
            job = services.segment_members_job_create(
                segment=segment, user=request.user, customer_ids=matched, total=len(matched)
            )
            return self._job_response(segment, job, **report)
        try:
            totals = self._apply_in_chunks(segment, matched, service="segment_members_add")
        except services.SegmentError as exc:
            return self._json_error(error_message(exc), status=409)
        segment.refresh_from_db(fields=["member_count"])
        return JsonResponse({**totals, **report, "member_count": segment.member_count})

    @staticmethod
    def _job_response(segment, job, **extra) -> JsonResponse:
        """202 for a change run by a job: the page polls `status_url` (the REST job detail)."""
        return JsonResponse(
            {
                "job": job.pk,
                "status": job.status,
                "status_url": job_status_url(job.pk),
                "total": job.total,
                "member_count": segment.member_count,
                **extra,
            },
            status=202,
        )


def _count(value) -> int:
    if isinstance(value, list | tuple | set):
        return len(value)
    return int(value or 0)


def csv_match_customers(upload) -> tuple[list[int], list[dict], int]:
    """Read a members CSV and resolve rows to customer ids.

    Returns (ids, first unmatched rows, number of unmatched rows). The file needs a header
    with `external_id` and/or `email` (a single unnamed column is read as external ids, or as
    emails when its first value contains "@"). Email matches only when exactly one profile has
    it (decisions 14). Lookups are batched, one query per 1,000 rows.
    """
    text = io.TextIOWrapper(upload, encoding="utf-8-sig", newline="")
    sample = text.read(4096)
    text.seek(0)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample else csv.excel
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(text, dialect)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration as exc:
        raise ServiceError("The file is empty.") from exc
    except UnicodeDecodeError as exc:
        raise ServiceError("The file is not UTF-8 text.") from exc
    first_row = None
    if "external_id" in header or "email" in header:
        id_col = header.index("external_id") if "external_id" in header else None
        email_col = header.index("email") if "email" in header else None
    elif len(header) == 1:
        first_row = header
        id_col, email_col = (None, 0) if "@" in header[0] else (0, None)
    else:
        raise ServiceError("The first row must name an external_id or email column.")

    ids: list[int] = []
    seen: set[int] = set()
    unmatched: list[dict] = []
    total_unmatched = 0
    batch: list[tuple[int, str | None, str | None]] = []

    def resolve_batch():
        nonlocal total_unmatched
        ext = {e for _, e, _ in batch if e}
        emails = {m.lower() for _, e, m in batch if m and not e}
        by_ext = dict(Customer.objects.filter(external_id__in=ext).values_list("external_id", "pk")) if ext else {}
        by_email: dict[str, list[int]] = {}
        if emails:
            for email, cid in Customer.objects.filter(email__in=emails).values_list("email", "pk"):
                by_email.setdefault(email, []).append(cid)
        for row_number, ext_id, email in batch:
            cid, reason = None, None
            if ext_id:
                cid = by_ext.get(ext_id)
                reason = None if cid else "no customer with this external_id"
            elif email:
                found = by_email.get(email.lower(), [])
                if len(found) == 1:
                    cid = found[0]
                else:
                    reason = "no customer with this email" if not found else "several customers share this email"
            else:
                reason = "empty row"
            if cid is None:
                total_unmatched += 1
                if len(unmatched) < UNMATCHED_REPORT_LIMIT:
                    unmatched.append({"row": row_number, "value": ext_id or email or "", "reason": reason})
            elif cid not in seen:
                seen.add(cid)
                ids.append(cid)
        batch.clear()

    rows = [first_row] if first_row else []
    row_number = 0 if first_row else 1
    try:
        for row in _chain(rows, reader):
            row_number += 1
            if row_number > UPLOAD_MAX_ROWS:
                raise ServiceError(f"The file has more than {UPLOAD_MAX_ROWS:,} rows.")
            if not any(cell.strip() for cell in row):
                continue
            ext_id = row[id_col].strip() if id_col is not None and id_col < len(row) else ""
            email = row[email_col].strip() if email_col is not None and email_col < len(row) else ""
            batch.append((row_number, ext_id or None, email or None))
            if len(batch) >= 1000:
                resolve_batch()
    except UnicodeDecodeError as exc:
        raise ServiceError("The file is not UTF-8 text.") from exc
    if batch:
        resolve_batch()
    return ids, unmatched, total_unmatched


def _chain(first, rest):
    yield from first
    yield from rest
