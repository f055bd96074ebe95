"""Admin for exports: the export page (columns, destination, schedule with its time zone, the
"N of M customers have every mandatory attribute" sentence, run now) and the run history with
download links. Writes go through segmentation.exports.services.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from segmentation.exports import selectors, services
from segmentation.exports.schedules import schedule_describe
from segmentation.models import Export, ExportRun

DESTINATION_FIELDS = {
    "folder_path": ("folder", "path"),
    "storage_alias": ("s3", "storage"),
    "storage_prefix": ("s3", "prefix"),
    "webhook_url": ("webhook", "url"),
    "webhook_secret": ("webhook", "secret"),
}


def _split(text: str) -> list[str]:
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


class ExportForm(forms.ModelForm):
    columns_text = forms.CharField(
        label="Columns",
        widget=forms.TextInput(attrs={"class": "vLargeTextField", "size": 90}),
        help_text="Attribute keys in file order, separated by commas (e.g. external_id, email, tags, entered_at).",
    )
    mandatory_text = forms.CharField(
        label="Mandatory attributes",
        required=False,
        widget=forms.TextInput(attrs={"class": "vLargeTextField", "size": 90}),
        help_text="Customers missing any of these are left out of the file.",
    )
    folder_path = forms.CharField(label="Folder", required=False, help_text="Absolute path on the server.")
    storage_alias = forms.CharField(label="Storage alias", required=False, help_text="A key of settings.STORAGES.")
    storage_prefix = forms.CharField(label="Key prefix", required=False)
    webhook_url = forms.URLField(label="Webhook URL", required=False, assume_scheme="https")
    webhook_secret = forms.CharField(
        label="Signing secret",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="HMAC-SHA256 key (X-Tessera-Signature). Leave empty to keep the current secret.",
    )

    class Meta:
        model = Export
        fields = [
            "name", "segment", "mode", "delimiter", "bom", "filename_template", "destination_kind",
            "schedule_type", "cron", "interval_minutes", "timezone", "enabled",
        ]  # fmt: skip
        labels = {"bom": "UTF-8 byte order mark", "destination_kind": "Destination", "timezone": "Time zone"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        available = ", ".join(c.key for c in selectors.export_available_columns())
        self.fields["columns_text"].help_text += f" Available: {available}."
        self.fields["timezone"].help_text = f"IANA time zone; empty means {settings.TIME_ZONE} (the server's)."
        if self.instance.pk:
            self.initial["columns_text"] = ", ".join(self.instance.columns)
            self.initial["mandatory_text"] = ", ".join(self.instance.mandatory)
            for name, (kind, key) in DESTINATION_FIELDS.items():
                if self.instance.destination_kind == kind and name != "webhook_secret":
                    self.initial[name] = self.instance.destination.get(key, "")

    def clean(self):
        data = super().clean()
        kind = data.get("destination_kind")
        destination = {key: data.get(name) or "" for name, (k, key) in DESTINATION_FIELDS.items() if k == kind}
        if kind == Export.Destination.WEBHOOK and not destination.get("secret"):
            destination["secret"] = (self.instance.destination or {}).get("secret", "")
        self.export_fields = {
            **{k: v for k, v in data.items() if k in services.EDITABLE_FIELDS},
            "columns": _split(data.get("columns_text", "")),
            "mandatory": _split(data.get("mandatory_text", "")),
            "destination": destination,
        }
        probe = Export(pk=self.instance.pk, owner=self.instance.owner)
        for key, value in self.export_fields.items():
            setattr(probe, key, value)
        try:
            services.export_validate(export=probe)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                target = {
                    "columns": "columns_text",
                    "mandatory": "mandatory_text",
                    "schedule": None,
                    "destination": "destination_kind",
                }.get(field, field)
                self.add_error(target if target in self.fields else None, errors)
        return data


def download_link(run: ExportRun):
    if not run.file or run.status != ExportRun.Status.SUCCEEDED:
        return "—"
    url = reverse("admin:segmentation_export_download", args=[run.export_id, run.pk])
    return format_html('<a href="{}" class="export-download">{}</a>', url, run.filename or "download")


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    form = ExportForm
    change_form_template = "admin/segmentation/export/change_form.html"
    list_display = ["name", "segment", "mode", "destination_kind", "schedule", "enabled", "last_status"]
    list_filter = ["mode", "destination_kind", "enabled"]
    list_select_related = ["segment"]
    search_fields = ["name", "segment__name", "segment__key"]
    actions = ["run_selected"]

    class Media:
        js = ["admin/segmentation/export.js"]

    readonly_fields = ["preview_sentence", "consecutive_failures", "owner"]
    fieldsets = [
        (None, {"fields": ["name", "segment", "enabled", "owner", "consecutive_failures"]}),
        ("Contents", {"fields": ["columns_text", "mandatory_text", "preview_sentence", "mode"]}),
        ("File", {"fields": ["filename_template", "delimiter", "bom"]}),
        (
            "Destination",
            {
                "fields": [
                    "destination_kind",
                    "folder_path",
                    "storage_alias",
                    "storage_prefix",
                    "webhook_url",
                    "webhook_secret",
                ]  # fmt: skip
            },
        ),
        ("Schedule", {"fields": ["schedule_type", "cron", "interval_minutes", "timezone"]}),
    ]

    @admin.display(description="Schedule")
    def schedule(self, export):
        return schedule_describe(export=export)

    @admin.display(description="Last run")
    def last_status(self, export):
        run = export.runs.first()
        return f"{run.get_status_display()} {run.created_at:%Y-%m-%d %H:%M}" if run else "never"

    @admin.display(description="Customers exported")
    def preview_sentence(self, export):
        if not export or not export.pk:
            return "Save the export to see how many customers it will contain."
        return selectors.export_preview_counts(segment=export.segment, mandatory=export.mandatory)["sentence"]

    def save_model(self, request, obj, form, change):
        fields = form.export_fields
        if change:
            saved = services.export_update(export=Export.objects.get(pk=obj.pk), **fields)
        else:
            saved = services.export_create(owner=request.user, **fields)
        obj.pk = saved.pk
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request, obj):
        services.export_delete(export=obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        export = self.get_object(request, object_id)
        if export is not None:
            runs = list(selectors.export_run_list(export=export)[:20])
            extra["recent_runs"] = [(run, download_link(run)) for run in runs]
            extra["runs_url"] = reverse("admin:segmentation_exportrun_changelist") + f"?export__id__exact={export.pk}"
            extra["can_run"] = request.user.has_perm("segmentation.add_exportrun")
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def get_urls(self):
        urls = [
            path("<int:export_id>/run/", self.admin_site.admin_view(self.run_view), name="segmentation_export_run"),
            path(
                "<int:export_id>/runs/<int:run_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="segmentation_export_download",
            ),
        ]
        return urls + super().get_urls()

    def _start(self, request, export) -> bool:
        try:
            run = services.export_run_start(export=export, user=request.user, trigger=ExportRun.Trigger.MANUAL)
        except services.ExportRunActive as exc:
            self.message_user(request, str(exc), messages.WARNING)
            return False
        self.message_user(request, f"Export “{export.name}” queued (run #{run.pk}).", messages.SUCCESS)
        return True

    def run_view(self, request, export_id):
        if request.method != "POST":
            raise Http404
        if not request.user.has_perm("segmentation.add_exportrun"):
            raise PermissionDenied
        export = get_object_or_404(Export, pk=export_id)
        self._start(request, export)
        return HttpResponseRedirect(reverse("admin:segmentation_export_change", args=[export.pk]))

    def download_view(self, request, export_id, run_id):
        # Export files hold personal data: viewing customers is required, not only exports (decisions 34).
        if not (
            request.user.has_perm("segmentation.view_exportrun") and request.user.has_perm("customers.view_customer")
        ):
            raise PermissionDenied
        run = get_object_or_404(ExportRun, pk=run_id, export_id=export_id, status=ExportRun.Status.SUCCEEDED)
        if not run.file:
            raise Http404("The file is no longer kept.")
        return FileResponse(run.file.open("rb"), as_attachment=True, filename=run.filename, content_type="text/csv")

    @admin.action(description="Run selected exports now", permissions=["run"])
    def run_selected(self, request, queryset):
        for export in queryset:
            self._start(request, export)

    def has_run_permission(self, request):
        return request.user.has_perm("segmentation.add_exportrun")


@admin.register(ExportRun)
class ExportRunAdmin(admin.ModelAdmin):
    list_display = [
        "id", "export", "trigger", "status", "created_at", "finished_at", "rows_written", "rows_skipped", "file_link",
    ]  # fmt: skip
    list_filter = ["status", "trigger"]
    list_select_related = ["export"]
    search_fields = ["export__name"]
    fields = [f.name for f in ExportRun._meta.fields if f.name not in ("file", "temp_paths")] + ["file_link"]
    readonly_fields = fields

    @admin.display(description="File")
    def file_link(self, run):
        return download_link(run)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
