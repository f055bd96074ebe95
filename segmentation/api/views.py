"""Segments REST API (rest-api.md, decisions 24–33). Views are thin: services write, selectors read."""

from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.api.errors import Conflict, DefinitionInvalid
from customers.api.pagination import CursorPagination, PageNumberPagination
from customers.api.permissions import RequiredPermissions, StrictModelPermissions
from customers.api.schema import AutoSchema, error_responses
from customers.api.serializers import JobSerializer
from customers.models import Customer
from customers.normalize import NormalizationError, check_clean_deep
from segmentation import selectors
from segmentation.models import Membership, Segment
from segmentation.services import (
    DefinitionProblems,
    SegmentConflict,
    SegmentInvalid,
    segment_copy,
    segment_create,
    segment_delete,
    segment_members_add,
    segment_members_remove,
    segment_recompute_start,
    segment_update,
)

from . import serializers as s
from .filters import SegmentFilter

SAMPLE_SIZE = 20
KEY = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="The segment's key (any case).")


def call_service(fn, **kwargs):
    """Run a segment service, mapping its errors onto the API envelope (decisions 9)."""
    try:
        return fn(**kwargs)
    except SegmentInvalid as exc:
        raise exceptions.ValidationError({field: [message] for field, message in exc.errors.items()})
    except DefinitionProblems as exc:
        raise DefinitionInvalid(exc.problems)
    except SegmentConflict as exc:
        raise Conflict(exc.message)


class SegmentPermissions(StrictModelPermissions):
    """Model permissions by method, and per action where an action is not plain CRUD."""

    action_perms = {
        "members": {
            "GET": ["segmentation.view_segment", "customers.view_customer"],
            "POST": ["segmentation.change_segment"],
        },
        "members_remove": {"POST": ["segmentation.change_segment"]},
        "recompute": {"POST": ["segmentation.change_segment"]},
        "copy": {"POST": ["segmentation.add_segment", "segmentation.view_segment"]},
        "history": {"GET": ["segmentation.view_segment"]},
    }

    def has_permission(self, request, view):
        perms = self.action_perms.get(getattr(view, "action", None), {}).get(request.method)
        if perms is None:
            return super().has_permission(request, view)
        return bool(request.user and request.user.is_authenticated and request.user.has_perms(perms))


class MemberCursorPagination(CursorPagination):
    ordering = "-id"


@extend_schema_view(
    list=extend_schema(summary="List segments", description="Filter by kind, status, tag or search text."),
    retrieve=extend_schema(summary="A segment", parameters=[KEY]),
    create=extend_schema(
        summary="Create a segment",
        request=s.SegmentSerializer,
        description="Auto-update segments answer `pending` and are computed in the background.",
    ),
    update=extend_schema(
        summary="Replace a segment's fields",
        request=s.SegmentUpdateSerializer,
        responses={200: s.SegmentSerializer, **error_responses(409)},
        parameters=[KEY],
    ),
    partial_update=extend_schema(
        summary="Change a segment",
        request=s.SegmentUpdateSerializer,
        responses={200: s.SegmentSerializer, **error_responses(409)},
        parameters=[KEY],
    ),
    destroy=extend_schema(
        summary="Delete a segment",
        description="409 while other segments refer to it, and for pre-built segments.",
        responses={204: None, **error_responses(409)},
        parameters=[KEY],
    ),
)
class SegmentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    schema = AutoSchema()
    queryset = Segment.objects.select_related("owner").prefetch_related("tags")
    serializer_class = s.SegmentSerializer
    permission_classes = [SegmentPermissions]
    filterset_class = SegmentFilter
    ordering_fields = ["name", "key", "created_at", "updated_at", "member_count", "computed_at"]
    ordering = ["name"]
    lookup_field = "key"
    lookup_value_regex = "[^/]+"

    def get_object(self):
        segment = selectors.segment_get(key=self.kwargs["key"])
        if segment is None:
            raise Http404(f"No segment with the key “{self.kwargs['key']}”.")
        self.check_object_permissions(self.request, segment)
        return segment

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return s.SegmentUpdateSerializer
        return super().get_serializer_class()

    def create(self, request, *args, **kwargs):
        serializer = s.SegmentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        segment = call_service(segment_create, owner=request.user, **data)
        headers = {"Location": f"/api/segments/{segment.key}/"}
        return Response(s.SegmentSerializer(segment).data, status=status.HTTP_201_CREATED, headers=headers)

    def update(self, request, *args, **kwargs):
        segment = self.get_object()
        serializer = s.SegmentUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        segment = call_service(segment_update, segment=segment, **serializer.validated_data)
        segment = selectors.segment_get(key=segment.key)
        return Response(s.SegmentSerializer(segment).data)

    def destroy(self, request, *args, **kwargs):
        call_service(segment_delete, segment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Members of a segment",
        description="Cursor-paginated, newest first. `POST` adds customers to a static or external segment.",
        parameters=[KEY],
        request=s.MembersChangeSerializer,
        responses={200: s.MemberSerializer(many=True), **error_responses(409)},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=MemberCursorPagination, filter_backends=[])
    def members(self, request, key=None):
        segment = self.get_object()
        if request.method == "POST":
            return self._change_members(request, segment, segment_members_add)
        page = self.paginate_queryset(selectors.segment_members(segment=segment))
        return self.get_paginated_response(s.MemberSerializer(page, many=True).data)

    @extend_schema(
        summary="Remove members",
        parameters=[KEY],
        request=s.MembersChangeSerializer,
        responses={200: s.MembersResultSerializer, **error_responses(409)},
    )
    @action(detail=True, methods=["post"], url_path="members/remove")
    def members_remove(self, request, key=None):
        return self._change_members(request, self.get_object(), segment_members_remove)

    def _change_members(self, request, segment, service):
        serializer = s.MembersChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = serializer.validated_data["external_ids"]
        try:
            check_clean_deep(ids)
        except NormalizationError as exc:
            raise exceptions.ValidationError({"external_ids": [str(exc)]})
        result = call_service(service, segment=segment, external_ids=ids, reason="api")
        return Response(result)

    @extend_schema(
        summary="Recompute now",
        description="Queues a recompute; answers 202 with the job and `Location: /api/jobs/{id}/`.",
        parameters=[KEY],
        request=None,
        responses={202: JobSerializer, **error_responses(409)},
    )
    @action(detail=True, methods=["post"])
    def recompute(self, request, key=None):
        segment = self.get_object()
        if segment.kind != Segment.Kind.DYNAMIC:
            raise Conflict("Only auto-update segments are recomputed; static and external ones are always current.")
        job = segment_recompute_start(segment=segment, user=request.user)
        job.refresh_from_db()
        return Response(
            JobSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": f"/api/jobs/{job.pk}/"}
        )

    @extend_schema(
        summary="Copy a segment",
        description="Copies the definition and tags (and the members of a static segment); pre-built ones too.",
        parameters=[KEY],
        request=s.CopySerializer,
        responses={201: s.SegmentSerializer},
    )
    @action(detail=True, methods=["post"])
    def copy(self, request, key=None):
        segment = self.get_object()
        serializer = s.CopySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        copy = call_service(segment_copy, segment=segment, owner=request.user, **serializer.validated_data)
        copy = selectors.segment_get(key=copy.key)
        headers = {"Location": f"/api/segments/{copy.key}/"}
        return Response(s.SegmentSerializer(copy).data, status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(
        summary="Size over time",
        description="One row per recompute or membership change: size, entered, exited, reason.",
        parameters=[KEY],
        responses={200: s.SnapshotSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=PageNumberPagination, filter_backends=[])
    def history(self, request, key=None):
        page = self.paginate_queryset(selectors.segment_history(segment=self.get_object()))
        return self.get_paginated_response(s.SnapshotSerializer(page, many=True).data)


class SegmentPreviewView(APIView):
    """Count, sample and summary of an unsaved definition, computed by the SQL compiler (decisions 10)."""

    schema = AutoSchema()
    permission_classes = [RequiredPermissions]
    required_permissions = {"POST": ["segmentation.view_segment", "customers.view_customer"]}

    @extend_schema(
        summary="Preview a definition",
        request=s.PreviewInputSerializer,
        responses={200: s.PreviewSerializer},
    )
    def post(self, request):
        from segmentation.engine import compile_definition, summarize, validate_definition

        serializer = s.PreviewInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        definition = serializer.validated_data["definition"]
        try:
            check_clean_deep(definition)
        except NormalizationError as exc:
            raise DefinitionInvalid([{"pointer": "", "message": str(exc)}])
        compared = None
        if serializer.validated_data.get("segment"):
            compared = selectors.segment_get(key=serializer.validated_data["segment"])
            if compared is None:
                raise exceptions.ValidationError({"segment": ["No segment has this key."]})
        problems = validate_definition(definition)
        if problems:
            raise DefinitionInvalid(problems)
        matching = Customer.objects.filter(compile_definition(definition, now=timezone.now()))
        sample = list(matching.order_by("pk").values("id", "external_id", "email")[:SAMPLE_SIZE])
        body = {"count": matching.count(), "sample": sample, "summary": summarize(definition)}
        if compared is not None:
            current = Membership.objects.filter(segment=compared)
            body["added"] = matching.exclude(pk__in=current.values("customer_id")).count()
            body["removed"] = current.exclude(customer_id__in=matching.values("pk")).count()
        return Response(body)
