"""Customers REST API: profiles, their events and segments, events, attributes, tags, imports, jobs.

Views stay thin: reads come from customers.selectors, profile writes from customers.services.
"""

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.generics import ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.models import AttributeDefinition, Customer, Event, Tag
from customers.selectors import (
    MAX_ID_DIGITS,
    attribute_list,
    attribute_used_by,
    customer_get,
    customer_list,
    event_list,
    job_list,
)
from customers.services import attribute_update_type, customer_create, customer_erase, customer_update
from customers.services.attributes import attribute_register
from customers.services.profiles import ProfileValueError
from customers.signals import profile_changed
from segmentation.selectors import customer_ledger, customer_segments

from . import serializers as s
from .errors import Conflict, PayloadTooLarge, ServiceUnavailable
from .filters import AllEventFilter, AttributeFilter, CustomerFilter, EventFilter, LedgerFilter, TagFilter
from .pagination import EventCursorPagination, LedgerCursorPagination
from .permissions import RequiredPermissions
from .schema import AutoSchema, error_responses

CUSTOMER_LOOKUP = OpenApiParameter(
    "external_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The customer's exact external id, or `id:<id>` (reaches anonymous profiles too).",
)


def profile_errors(exc: ProfileValueError) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [message] for field, message in exc.errors.items()})


def _customer_or_404(lookup: str, queryset=None) -> Customer:
    try:
        return customer_get(lookup=lookup, queryset=queryset)
    except Customer.DoesNotExist:
        raise Http404(f"No customer with external id or id “{lookup}”.")


class ApiMixin:
    schema = AutoSchema()


class RowIdMixin(ApiMixin):
    # Longer ids overflow a bigint (a database error, not a 404), so they don't route here at all.
    lookup_value_regex = f"[0-9]{{1,{MAX_ID_DIGITS}}}"


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """JSON 404 for unknown /api/ paths, so every API answer uses the envelope (decisions 9)."""
    message = f"There is no API endpoint at {request.path} (see /api/docs/)."
    return JsonResponse({"code": "not_found", "message": message, "errors": []}, status=404)


@extend_schema_view(
    list=extend_schema(summary="List customers"),
    create=extend_schema(summary="Create a customer", responses={201: s.CustomerSerializer, **error_responses(409)}),
    retrieve=extend_schema(summary="Retrieve a customer", parameters=[CUSTOMER_LOOKUP]),
    update=extend_schema(summary="Replace a customer's attributes", parameters=[CUSTOMER_LOOKUP]),
    partial_update=extend_schema(summary="Update some of a customer's attributes", parameters=[CUSTOMER_LOOKUP]),
    destroy=extend_schema(
        summary="Erase a customer (GDPR)",
        description="Deletes the profile, its events, ids, memberships and ledger rows in one transaction; "
        "an audit entry without personal data records it.",
        parameters=[CUSTOMER_LOOKUP],
    ),
)
class CustomerViewSet(ApiMixin, viewsets.ModelViewSet):
    serializer_class = s.CustomerSerializer
    filterset_class = CustomerFilter
    lookup_field = "external_id"
    lookup_value_regex = "[^/]+"
    ordering_fields = ["id", "external_id", "email", "created_at", "updated_at", "first_seen_at", "last_seen_at"]
    ordering = ["id"]
    queryset = Customer.objects.none()  # model for the permission class; reads use the selector

    def get_queryset(self):
        return customer_list()

    def get_object(self):
        customer = _customer_or_404(self.kwargs[self.lookup_field], self.get_queryset())
        self.check_object_permissions(self.request, customer)
        return customer

    def _fresh(self, customer: Customer) -> Customer:
        return customer_list().get(pk=customer.pk)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        external_id = data.pop("external_id", None)
        if external_id and Customer.objects.filter(external_id=external_id).exists():
            raise Conflict(f"A customer with external id “{external_id}” already exists.")
        try:
            customer = customer_create(external_id=external_id, **data)
        except ProfileValueError as exc:
            raise profile_errors(exc)
        except IntegrityError:
            raise Conflict(f"A customer with external id “{external_id}” already exists.")
        return Response(self.get_serializer(self._fresh(customer)).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        customer = self.get_object()
        serializer = self.get_serializer(customer, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("external_id", None)
        if not partial:
            # PUT replaces: absent attributes become unknown, absent custom keys are removed.
            for field in s.PROFILE_WRITE_FIELDS:
                data.setdefault(field, None)
            custom = {key: None for key in customer.custom or {}}
            custom.update(data.get("custom") or {})
            data["custom"] = custom
            data.setdefault("tags", [])
        try:
            customer_update(customer=customer, **data)
        except ProfileValueError as exc:
            raise profile_errors(exc)
        return Response(self.get_serializer(self._fresh(customer)).data)

    def destroy(self, request, *args, **kwargs):
        customer = self.get_object()
        customer_erase(customer=customer, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerEventViewSet(ApiMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """A customer's events, newest first (cursor-paginated)."""

    serializer_class = s.EventSerializer
    filterset_class = EventFilter
    filter_backends = [DjangoFilterBackend]
    pagination_class = EventCursorPagination
    permission_classes = [RequiredPermissions]
    required_permissions = {"*": ["customers.view_customer", "customers.view_event"]}
    queryset = Event.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Event.objects.none()
        customer = _customer_or_404(self.kwargs["external_id"])
        return event_list().filter(customer=customer)

    @extend_schema(summary="List a customer's events", parameters=[CUSTOMER_LOOKUP])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


@extend_schema(
    summary="A customer's segments",
    description="Current memberships (`memberships`) and the entered/exited history with reasons (`results`, "
    "newest first, cursor-paginated).",
    parameters=[CUSTOMER_LOOKUP],
)
class CustomerSegmentsView(ApiMixin, ListAPIView):
    serializer_class = s.LedgerEntrySerializer
    filterset_class = LedgerFilter
    filter_backends = [DjangoFilterBackend]
    pagination_class = LedgerCursorPagination
    permission_classes = [RequiredPermissions]
    required_permissions = {
        "*": ["customers.view_customer", "segmentation.view_membership", "segmentation.view_ledgerentry"]
    }

    def get_customer(self) -> Customer:
        if not hasattr(self, "_customer"):
            self._customer = _customer_or_404(self.kwargs["external_id"])
        return self._customer

    def get_queryset(self):
        from segmentation.models import LedgerEntry

        if getattr(self, "swagger_fake_view", False):
            return LedgerEntry.objects.none()
        return customer_ledger(self.get_customer())

    def get_memberships(self) -> list[dict]:
        return s.MembershipSerializer(customer_segments(self.get_customer()), many=True).data


@extend_schema_view(
    list=extend_schema(summary="List events"),
    retrieve=extend_schema(summary="Retrieve an event"),
)
class EventViewSet(RowIdMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.EventSerializer
    filterset_class = AllEventFilter
    filter_backends = [DjangoFilterBackend]
    pagination_class = EventCursorPagination
    queryset = Event.objects.none()

    def get_queryset(self):
        return event_list()


@extend_schema_view(
    list=extend_schema(summary="List attributes", description="Every attribute a definition may name."),
    create=extend_schema(
        summary="Register a custom attribute", responses={201: s.AttributeSerializer, **error_responses(409)}
    ),
    retrieve=extend_schema(summary="Retrieve an attribute"),
    update=extend_schema(
        summary="Change a custom attribute", responses={200: s.AttributeSerializer, **error_responses(409)}
    ),
    partial_update=extend_schema(
        summary="Change a custom attribute",
        description="A new `type` re-coerces stored values in a background job.",
        responses={200: s.AttributeSerializer, **error_responses(409)},
    ),
    destroy=extend_schema(
        summary="Delete a custom attribute",
        description="Refused (409) for built-in attributes and while a segment definition uses it.",
        responses={204: None, **error_responses(409)},
    ),
)
class AttributeViewSet(ApiMixin, viewsets.ModelViewSet):
    serializer_class = s.AttributeSerializer
    filterset_class = AttributeFilter
    lookup_field = "key"
    lookup_value_regex = "[^/]+"
    ordering_fields = ["key", "kind", "type"]
    queryset = AttributeDefinition.objects.none()

    def get_queryset(self):
        return attribute_list()

    def get_object(self):
        if "\x00" in self.kwargs["key"]:  # PostgreSQL refuses NUL in text; no key can hold one
            raise Http404("No such attribute.")
        return super().get_object()

    def perform_create(self, serializer):
        data = serializer.validated_data
        if AttributeDefinition.objects.filter(key=f"custom.{data['key']}").exists():
            raise Conflict(f"The attribute custom.{data['key']} already exists.")
        serializer.instance = attribute_register(
            key=data["key"], type_=data["type"], label=data.get("label", ""), description=data.get("description", "")
        )

    def perform_update(self, serializer):
        attribute = serializer.instance
        if attribute.kind != AttributeDefinition.Kind.CUSTOM:
            raise Conflict(f"The built-in attribute {attribute.key} cannot be changed.")
        data = serializer.validated_data
        with transaction.atomic():
            changed = [f for f in ("label", "description") if f in data and data[f] != getattr(attribute, f)]
            for field in changed:
                setattr(attribute, field, data[field])
            if changed:
                attribute.save(update_fields=[*changed, "updated_at"])
            if "type" in data:
                attribute_update_type(attribute=attribute, type_=data["type"])

    def perform_destroy(self, instance):
        if instance.kind != AttributeDefinition.Kind.CUSTOM:
            raise Conflict(f"The built-in attribute {instance.key} cannot be deleted.")
        used_by = attribute_used_by(key=instance.key)
        if used_by:
            raise Conflict(f"{instance.key} is used by the segment(s) {', '.join(used_by)}; change them first.")
        instance.delete()


def _tag_customers_touched(customer_ids: list[int]) -> None:
    # Tags are profile data: a rename or delete changes `updated_at` (decisions 16) and can move
    # customers in or out of segments with tag conditions.
    if not customer_ids:
        return
    Customer.objects.filter(pk__in=customer_ids).update(updated_at=timezone.now())
    transaction.on_commit(
        lambda: profile_changed.send(sender=Customer, customer_ids=customer_ids, reason="profile_change")
    )


@extend_schema_view(
    list=extend_schema(summary="List tags"),
    create=extend_schema(summary="Create a tag"),
    retrieve=extend_schema(summary="Retrieve a tag"),
    update=extend_schema(summary="Rename a tag"),
    partial_update=extend_schema(summary="Rename a tag"),
    destroy=extend_schema(summary="Delete a tag", description="Removes it from every customer and segment."),
)
class TagViewSet(RowIdMixin, viewsets.ModelViewSet):
    serializer_class = s.TagSerializer
    filterset_class = TagFilter
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]
    queryset = Tag.objects.all()

    def perform_create(self, serializer):
        try:
            with transaction.atomic():
                serializer.save()
        except IntegrityError:
            raise Conflict("A tag with this name already exists.")

    @transaction.atomic
    def perform_update(self, serializer):
        serializer.save()
        _tag_customers_touched(list(serializer.instance.customers.values_list("pk", flat=True)))

    @transaction.atomic
    def perform_destroy(self, instance):
        customer_ids = list(instance.customers.values_list("pk", flat=True))
        instance.delete()
        _tag_customers_touched(customer_ids)


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
        try:
            from customers.services.imports import customer_import_start
        except ImportError:
            raise ServiceUnavailable("CSV import is not available in this installation.")
        path = _save_upload(upload)
        job = customer_import_start(
            upload_path=str(path),
            user=request.user,
            dry_run=serializer.validated_data["dry_run"],
            delimiter=serializer.validated_data.get("delimiter"),
        )
        location = reverse("job-detail", kwargs={"pk": job.pk})
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
