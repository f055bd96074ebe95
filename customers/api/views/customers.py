"""Customer profiles, their events and segments, and the event stream."""

from django.db import IntegrityError
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.generics import ListAPIView
from rest_framework.response import Response

from customers.models import Customer, Event
from customers.selectors import (
    customer_list,
    event_list,
)
from customers.services import customer_create, customer_erase, customer_update
from customers.services.profiles import ProfileValueError
from segmentation.selectors import customer_ledger, customer_segments

from .. import serializers as s
from ..errors import Conflict
from ..filters import AllEventFilter, CustomerFilter, EventFilter, LedgerFilter
from ..pagination import EventCursorPagination, LedgerCursorPagination
from ..permissions import RequiredPermissions
from ..schema import error_responses
from .base import CUSTOMER_LOOKUP, ApiMixin, RowIdMixin, customer_or_404, profile_errors


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
        customer = customer_or_404(self.kwargs[self.lookup_field], self.get_queryset())
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
        customer = customer_or_404(self.kwargs["external_id"])
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
            self._customer = customer_or_404(self.kwargs["external_id"])
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
