"""Shared pieces of the customers API views: lookups, error translation, schema, 404."""

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions

from customers.models import Customer
from customers.selectors import (
    MAX_ID_DIGITS,
    customer_get,
)
from customers.services.profiles import ProfileValueError

from ..schema import AutoSchema

CUSTOMER_LOOKUP = OpenApiParameter(
    "external_id",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The customer's exact external id, or `id:<id>` (reaches anonymous profiles too).",
)


def profile_errors(exc: ProfileValueError) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [message] for field, message in exc.errors.items()})


def customer_or_404(lookup: str, queryset=None) -> Customer:
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
