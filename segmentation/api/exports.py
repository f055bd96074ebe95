"""REST API for exports: `/api/exports/` CRUD, run now, run history and file downloads.

Writes go through segmentation.exports.services; the webhook secret is write-only.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from customers.api.errors import Conflict
from customers.api.permissions import StrictModelPermissions
from segmentation.exports import selectors, services
from segmentation.models import Export, ExportRun, Segment

SECRET_MASK = "********"


def _drf_error(exc: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(exc, "message_dict"):
        return exceptions.ValidationError(exc.message_dict)
    return exceptions.ValidationError(exc.messages)


class ExportRunSerializer(serializers.ModelSerializer):
    job = serializers.IntegerField(source="job_id", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportRun
        fields = [
            "id", "job", "trigger", "status", "created_at", "started_at", "finished_at", "attempts",
            "members_total", "rows_written", "rows_skipped", "rows_added", "rows_removed", "filename",
            "file_size", "delivered_to", "error", "warning", "download_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_download_url(self, run) -> str | None:
        if not run.file or run.status != ExportRun.Status.SUCCEEDED:
            return None
        path = f"/api/exports/{run.export_id}/runs/{run.pk}/download/"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class ExportSerializer(serializers.ModelSerializer):
    segment = serializers.SlugRelatedField(slug_field="key", queryset=Segment.objects.all())
    owner = serializers.CharField(source="owner.username", read_only=True, default=None)
    preview = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id", "name", "segment", "columns", "mandatory", "delimiter", "bom", "filename_template", "mode",
            "destination_kind", "destination", "schedule_type", "cron", "interval_minutes", "timezone", "enabled",
            "owner", "consecutive_failures", "preview", "last_run", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["consecutive_failures", "created_at", "updated_at"]

    def get_preview(self, export) -> dict:
        return selectors.export_preview_counts(segment=export.segment, mandatory=export.mandatory)

    def get_last_run(self, export) -> dict | None:
        run = export.runs.first()
        return ExportRunSerializer(run, context=self.context).data if run else None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("destination", {}).get("secret"):
            data["destination"] = {**data["destination"], "secret": SECRET_MASK}
        return data

    def _fields(self, validated):
        return {k: v for k, v in validated.items() if k in services.EDITABLE_FIELDS}

    def create(self, validated_data):
        try:
            return services.export_create(owner=self.context["request"].user, **self._fields(validated_data))
        except DjangoValidationError as exc:
            raise _drf_error(exc)

    def update(self, instance, validated_data):
        fields = self._fields(validated_data)
        destination = fields.get("destination")
        if isinstance(destination, dict) and destination.get("secret") in (None, "", SECRET_MASK):
            # The secret is write-only: an edit that does not repeat it keeps the stored one.
            old = instance.destination.get("secret") if instance.destination else None
            if old and fields.get("destination_kind", instance.destination_kind) == instance.destination_kind:
                fields["destination"] = {**destination, "secret": old}
        try:
            return services.export_update(export=instance, **fields)
        except DjangoValidationError as exc:
            raise _drf_error(exc)


class PreviewSerializer(serializers.Serializer):
    segment = serializers.SlugRelatedField(slug_field="key", queryset=Segment.objects.all())
    mandatory = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class ExportActionPermissions(StrictModelPermissions):
    """Running needs `add_exportrun`; reading runs `view_exportrun`; a file download also `view_customer` (PII)."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        needs = {
            "run": ["segmentation.add_exportrun"],
            "runs": ["segmentation.view_exportrun"],
            "download": ["segmentation.view_exportrun", "customers.view_customer"],
            "preview": ["customers.view_customer"],
        }.get(getattr(view, "action", None), [])
        return request.user.has_perms(needs)


class ExportViewSet(viewsets.ModelViewSet):
    serializer_class = ExportSerializer
    permission_classes = [ExportActionPermissions]
    ordering_fields = ["name", "created_at", "updated_at", "id"]
    filterset_fields = ["segment", "mode", "destination_kind", "enabled"]

    def get_queryset(self):
        return selectors.export_list(user=self.request.user)

    def perform_destroy(self, instance):
        try:
            services.export_delete(export=instance)
        except ProtectedError as exc:
            raise Conflict(str(exc))

    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        export = self.get_object()
        try:
            run = services.export_run_start(export=export, user=request.user, trigger=ExportRun.Trigger.API)
        except services.ExportRunActive as exc:
            raise Conflict(str(exc))
        body = {"job": run.job_id, "run": ExportRunSerializer(run, context={"request": request}).data}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": f"/api/jobs/{run.job_id}/"})

    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        export = self.get_object()
        page = self.paginate_queryset(selectors.export_run_list(export=export))
        data = ExportRunSerializer(page, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    @action(detail=True, methods=["get"], url_path=r"runs/(?P<run_id>\d+)/download")
    def download(self, request, pk=None, run_id=None):
        export = self.get_object()
        run = get_object_or_404(ExportRun, pk=run_id, export=export, status=ExportRun.Status.SUCCEEDED)
        if not run.file:
            raise exceptions.NotFound("The file of this run is no longer kept (retention).")
        return FileResponse(run.file.open("rb"), as_attachment=True, filename=run.filename, content_type="text/csv")

    @action(detail=False, methods=["post"])
    def preview(self, request):
        """{"segment": KEY, "mandatory": [...]} -> {"total", "exported", "sentence"} before running."""
        serializer = PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        known = {c.key for c in selectors.export_available_columns()}
        unknown = [k for k in serializer.validated_data["mandatory"] if k not in known]
        if unknown:
            raise exceptions.ValidationError({"mandatory": f"Unknown attributes: {', '.join(unknown)}."})
        counts = selectors.export_preview_counts(
            segment=serializer.validated_data["segment"], mandatory=serializer.validated_data["mandatory"]
        )
        return Response(counts)
