"""Reads for personalization. Segments are read only through segmentation.selectors."""

from __future__ import annotations

import datetime as dt

from django.db.models import F, Q

from customers.models import Customer
from segmentation.selectors import customer_segments

from .models import Placement, Variant


def variant_decide(*, placement: Placement, customer: Customer | None, now: dt.datetime) -> Variant | None:
    """The variant to show: highest priority among active, in-window variants whose segment holds
    the customer, else the fallback (no segment). One query for memberships, one for variants."""
    segment_ids = set()
    if customer is not None:
        segment_ids = set(customer_segments(customer).values_list("segment_id", flat=True))
    in_window = (Q(starts_at__isnull=True) | Q(starts_at__lte=now)) & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))
    return (
        Variant.objects.filter(placement=placement, active=True)
        .filter(in_window)
        .filter(Q(segment__isnull=True) | Q(segment_id__in=segment_ids))
        .select_related("segment")
        # At equal priority a targeted variant beats the fallback.
        .order_by("-priority", F("segment_id").asc(nulls_last=True), "id")
        .first()
    )
