from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.api.permissions import RequiredPermissions
from customers.models import Customer
from customers.selectors import customer_get
from personalization.models import Placement
from personalization.selectors import variant_decide


class DecideView(APIView):
    """`GET /api/placements/{key}/decide/?customer=<external_id | id:N>`: the content to show."""

    permission_classes = [RequiredPermissions]
    required_permissions = {"GET": ["personalization.view_variant", "customers.view_customer"]}

    @extend_schema(
        parameters=[OpenApiParameter("customer", str, description="External id or id:<id>; omit for anonymous")],
        responses=inline_serializer(
            "Decision",
            {
                "placement": serializers.CharField(),
                "variant": serializers.CharField(allow_null=True),
                "segment": serializers.CharField(allow_null=True),
                "content": serializers.JSONField(allow_null=True),
            },
        ),
    )
    def get(self, request, key):
        placement = get_object_or_404(Placement, key=key)
        lookup = request.query_params.get("customer")
        customer = None
        if lookup:
            try:
                customer = customer_get(lookup=lookup)
            except Customer.DoesNotExist:
                customer = None  # unknown visitors get the fallback, like anonymous ones
        variant = variant_decide(placement=placement, customer=customer, now=timezone.now())
        return Response(
            {
                "placement": placement.key,
                "variant": variant.name if variant else None,
                "segment": variant.segment.key if variant and variant.segment else None,
                "content": variant.content if variant else None,
            }
        )
