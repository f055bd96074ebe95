"""Customers REST API: profiles, their events and segments, events, attributes, tags, imports, jobs.

Views stay thin: reads come from customers.selectors, profile writes from customers.services.
"""

from .base import api_not_found
from .customers import CustomerEventViewSet, CustomerSegmentsView, CustomerViewSet, EventViewSet
from .jobs import ImportView, JobViewSet
from .registry import AttributeViewSet, TagViewSet

__all__ = [
    "AttributeViewSet",
    "CustomerEventViewSet",
    "CustomerSegmentsView",
    "CustomerViewSet",
    "EventViewSet",
    "ImportView",
    "JobViewSet",
    "TagViewSet",
    "api_not_found",
]
