"""CSV import of customer profiles in the admin: upload -> dry-run preview with row errors -> confirm.

Small files are validated while the person waits and imported on confirm (validated again then,
decisions 37). Files above ADMIN_SYNC_BYTES go to a background job (customer_import_start) whose
progress and errors show on the job's admin page.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from customers.models import Customer

# Above this the preview would keep the person waiting for more than a few seconds
# (the Python validation runs at roughly 20-30k rows/s; 20 MB is about 150k rows).
ADMIN_SYNC_BYTES = 20 * 1024 * 1024
UPLOAD_NAME = re.compile(r"admin-[0-9a-f]{32}\.csv")


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, with or without BOM. Columns are attribute keys.")
    delimiter = forms.ChoiceField(
        choices=[("", "Detect"), (",", "Comma ,"), (";", "Semicolon ;")], required=False, initial=""
    )


def _upload_dir() -> Path:
    folder = Path(settings.MEDIA_ROOT) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _store(upload) -> Path:
    target = _upload_dir() / f"admin-{uuid.uuid4().hex}.csv"
    with open(target, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return target


def _stored(name: str) -> Path | None:
    """The stored upload a confirm form names; only our own file names, never a path."""
    if not UPLOAD_NAME.fullmatch(name or ""):
        return None
    target = _upload_dir() / name
    return target if target.exists() else None


class CustomerImportMixin:
    """The import view lives on the customer admin so its URL and permissions are the customers'."""

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="customers_customer_import"), *super().get_urls()]

    def import_view(self, request):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Import customers from CSV",
            "opts": Customer._meta,
            "media": self.media,
            "max_bytes": getattr(settings, "TESSERA_IMPORT_MAX_BYTES", 1024**3),
        }
        if request.method == "POST" and "confirm" in request.POST:
            return self._confirm(request, context)
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > context["max_bytes"]:
                form.add_error("file", f"The file is larger than the limit of {context['max_bytes']:,} bytes.")
            else:
                stored = _store(upload)
                if upload.size > ADMIN_SYNC_BYTES:
                    return self._start_job(request, stored, form.cleaned_data["delimiter"] or None, upload.name)
                return self._preview(request, context, stored, form.cleaned_data["delimiter"] or None, upload.name)
        context["form"] = form
        return TemplateResponse(request, "admin/customers/customer/import.html", context)

    def _preview(self, request, context, stored: Path, delimiter, original_name: str):
        from customers.services.imports import customer_import

        result = customer_import(path_or_file=str(stored), dry_run=True, delimiter=delimiter)
        if not result.ok:
            stored.unlink(missing_ok=True)
        context.update(
            result=result,
            token=stored.name,
            delimiter=delimiter or "",
            original_name=original_name,
            hidden_errors=max(0, result.error_total - len({e["line"] for e in result.errors})),
        )
        return TemplateResponse(request, "admin/customers/customer/import.html", context)

    def _confirm(self, request, context):
        from customers.services.imports import customer_import

        stored = _stored(request.POST.get("token"))
        if stored is None:
            messages.error(request, "The uploaded file has expired; upload it again.")
            return HttpResponseRedirect(reverse("admin:customers_customer_import"))
        delimiter = request.POST.get("delimiter") or None
        result = customer_import(
            path_or_file=str(stored), dry_run=False, delimiter=delimiter, source=request.POST.get("source") or None
        )
        if not result.ok:  # the data changed since the preview; show what is wrong now
            return self._preview(request, context, stored, delimiter, request.POST.get("original_name", ""))
        stored.unlink(missing_ok=True)
        messages.success(
            request,
            f"Import finished: {result.created} created, {result.updated} updated, {result.unchanged} unchanged.",
        )
        return HttpResponseRedirect(reverse("admin:customers_customer_changelist"))

    def _start_job(self, request, stored: Path, delimiter, original_name: str):
        from customers.services.imports import customer_import_start

        job = customer_import_start(
            upload_path=str(stored), user=request.user, delimiter=delimiter, source=f"csv:{original_name}"
        )
        messages.info(
            request,
            f"The file is being validated and imported in the background (job #{job.pk}, "
            f"started {timezone.localtime():%H:%M}). Nothing is written if a row is bad.",
        )
        return HttpResponseRedirect(reverse("admin:customers_job_change", args=[job.pk]))
