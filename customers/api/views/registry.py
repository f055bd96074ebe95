"""The attribute registry and tags."""

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets

from customers.models import AttributeDefinition, Customer, Tag
from customers.selectors import (
    attribute_list,
    attribute_used_by,
)
from customers.services import attribute_update_type
from customers.services.attributes import attribute_register
from customers.signals import profile_changed

from .. import serializers as s
from ..errors import Conflict
from ..filters import AttributeFilter, TagFilter
from ..schema import error_responses
from .base import ApiMixin, RowIdMixin


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
