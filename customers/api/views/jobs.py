"""Background jobs and the CSV import that starts one."""

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.selectors import (
    job_list,
)

from .. import serializers as s
from ..errors import PayloadTooLarge
from ..permissions import RequiredPermissions
from ..schema import error_responses
from .base import ApiMixin, RowIdMixin


@extend_schema_view(
    list=extend_schema(summary="List background jobs", description="Your own jobs; staff with view_job see all."),
    retrieve=extend_schema(summary="Retrieve a background job"),
)
class JobViewSet(RowIdMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.JobSerializer
    permission_classes = [IsAuthenticated]
    filterset_fields = ["status", "kind"]
    ordering_fields = ["created_at", "id"]

    def get_queryset(self):
        from customers.models import Job

        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        return job_list(user=self.request.user)


def _save_upload(upload) -> Path:
    """Put the upload under MEDIA_ROOT/imports/ without holding it in memory.

    Django has already streamed a large upload into a temporary file; moving it is a rename on
    the same filesystem (else one streamed copy), small uploads are written chunk by chunk.
    """
    folder = Path(settings.MEDIA_ROOT) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex}.csv"
    if hasattr(upload, "temporary_file_path"):
        upload.file.flush()
        shutil.move(upload.temporary_file_path(), path)
        return path
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return path


class ImportView(ApiMixin, APIView):
    """CSV import of profiles, always in the background (decisions 33)."""

    parser_classes = [MultiPartParser]
    permission_classes = [RequiredPermissions]
    required_permissions = {"*": ["customers.add_customer", "customers.change_customer"]}

    @extend_schema(
        summary="Import customers from CSV",
        description="Same columns as the admin import. Answers 202 with the job and `Location: /api/jobs/{id}/`; "
        "the file is validated in the background and problems are reported on the job.",
        request={"multipart/form-data": s.ImportUploadSerializer},
        responses={
            202: OpenApiResponse(s.JobSerializer, description="The import job was queued."),
            **error_responses(413, 415),
        },
    )
    def post(self, request):
        serializer = s.ImportUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        limit = getattr(settings, "TESSERA_IMPORT_MAX_BYTES", 1024**3)
        if upload.size > limit:
            raise PayloadTooLarge(f"The file is {upload.size} bytes; the limit is {limit} bytes.")
        from customers.services.imports import customer_import_start

        path = _save_upload(upload)
        job = customer_import_start(
            upload_path=str(path),
            user=request.user,
            dry_run=serializer.validated_data["dry_run"],
            delimiter=serializer.validated_data.get("delimiter"),
        )
        location = reverse("job-detail", kwargs={"pk": job.pk})
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
