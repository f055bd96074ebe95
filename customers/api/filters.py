"""django-filter FilterSets for the customers API.

Text filters normalise their value the way stored values were normalised (decisions 3, 15), so
`?email=Ann@Example.com` and `?country=Poland` find what the profile holds.
"""

import datetime as dt

from django import forms
from django.db.models import Q
from django.db.models.functions import Lower
from django.db.models.lookups import Exact
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from rest_framework.exceptions import ValidationError

from customers.models import AttributeDefinition, Customer, Event, Tag
from customers.normalize import NormalizationError, coerce, fold, normalize_country, normalize_text
from customers.selectors import (
    JSONListHasText,
    customer_in_segment_q,
    customer_lookup_q,
    customer_with_tag_q,
    is_row_id,
)
from segmentation.engine.expressions import JsonKind, JsonNumber, JsonText, NumberLiteral
from segmentation.models import LedgerEntry

CUSTOM_PREFIX = "custom."


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601 datetime; without an offset it is UTC (decisions 6), and it is converted to UTC.

    Converting here keeps the value valid for the database: PostgreSQL refuses offsets beyond
    ±15:59 that Python accepts, and a shift past year 1 or 9999 cannot be represented.
    """

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError("The date and time is out of range.", code="invalid")


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


def _clean(value, normalizer, field):
    try:
        return normalizer(value)
    except NormalizationError as exc:
        raise ValidationError({field: [str(exc)]})


class CustomerFilter(filters.FilterSet):
    email = filters.CharFilter(method="filter_email", help_text="Exact email (case-insensitive).")
    country = filters.CharFilter(method="filter_country", help_text="Country as ISO alpha-2, alpha-3 or name.")
    tag = filters.CharFilter(method="filter_tag", help_text="Has this tag (case-insensitive).")
    segment = filters.CharFilter(method="filter_segment", help_text="Current member of the segment with this key.")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    first_seen_after = UtcDateTimeFilter(field_name="first_seen_at", lookup_expr="gte")
    first_seen_before = UtcDateTimeFilter(field_name="first_seen_at", lookup_expr="lt")
    last_seen_after = UtcDateTimeFilter(field_name="last_seen_at", lookup_expr="gte")
    last_seen_before = UtcDateTimeFilter(field_name="last_seen_at", lookup_expr="lt")

    class Meta:
        model = Customer
        fields = []

    def filter_email(self, queryset, name, value):
        return queryset.filter(email=_clean(value, fold, name))

    def filter_country(self, queryset, name, value):
        return queryset.filter(country=_clean(value, normalize_country, name))

    def filter_tag(self, queryset, name, value):
        return queryset.filter(customer_with_tag_q(_clean(value, fold, name) or ""))

    def filter_segment(self, queryset, name, value):
        return queryset.filter(customer_in_segment_q(_clean(value, fold, name) or ""))

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        for param in self.data:
            if param.startswith(CUSTOM_PREFIX):
                queryset = queryset.filter(custom_attribute_q(param, self.data[param]))
        return queryset


def custom_attribute_q(param: str, raw: str) -> Q:
    """`?custom.<key>=value`: equality in the attribute's registered type, text ignoring case.

    Reads values with the segment engine's JSON expressions, which take every key literally
    (Django's KeyTransform would read a key like "2024" as an array index on PostgreSQL).
    """
    if "\x00" in param:
        raise ValidationError({"custom": ["Attribute keys cannot contain NUL characters."]})
    attribute = AttributeDefinition.objects.filter(key=param, kind=AttributeDefinition.Kind.CUSTOM).first()
    if attribute is None:
        raise ValidationError({param: ["Unknown custom attribute (see /api/attributes/)."]})
    key = attribute.custom_key
    if attribute.type in ("string", "list"):
        text = _clean(raw, fold, param) or ""
        if attribute.type == "list":  # one of the items is the value
            return Q(JSONListHasText("custom", key, text))
        return Q(Exact(Lower(JsonText("custom", [key])), text))
    value = _clean(raw, lambda v: coerce(v, attribute.type), param)
    if value is None:
        raise ValidationError({param: ["A value is required."]})
    if attribute.type == "number":
        return Q(Exact(JsonNumber("custom", [key], strings=False), NumberLiteral(value)))
    if attribute.type == "boolean":
        return Q(Exact(JsonKind("custom", [key]), "true" if value else "false"))
    return Q(Exact(JsonText("custom", [key]), value))  # dates and datetimes are stored as fixed-form text


class EventFilter(filters.FilterSet):
    name = filters.CharFilter(field_name="name", help_text="Exact event name.")
    after = UtcDateTimeFilter(field_name="timestamp", lookup_expr="gte", help_text="At or after (ISO 8601).")
    before = UtcDateTimeFilter(field_name="timestamp", lookup_expr="lt", help_text="Before (ISO 8601).")

    class Meta:
        model = Event
        fields = []


class AllEventFilter(EventFilter):
    customer = filters.CharFilter(method="filter_customer", help_text="External id or id:<id> of the customer.")
    source = filters.CharFilter(method="filter_source", help_text="Source id or name.")

    def filter_customer(self, queryset, name, value):
        return queryset.filter(**{f"customer__{k}": v for k, v in customer_lookup_q(value).items()})

    def filter_source(self, queryset, name, value):
        if value.isascii() and value.isdigit():
            return queryset.filter(source_id=int(value)) if is_row_id(value) else queryset.none()
        return queryset.annotate(source_name=Lower("source__name")).filter(source_name=_clean(value, fold, name))


class LedgerFilter(filters.FilterSet):
    segment = filters.CharFilter(method="filter_segment", help_text="Segment key.")
    change = filters.ChoiceFilter(choices=LedgerEntry.Change.choices)

    class Meta:
        model = LedgerEntry
        fields = []

    def filter_segment(self, queryset, name, value):
        return queryset.annotate(seg_key=Lower("segment__key")).filter(seg_key=_clean(value, fold, name))


class TagFilter(filters.FilterSet):
    search = filters.CharFilter(method="filter_search", help_text="Name contains (case-insensitive).")

    class Meta:
        model = Tag
        fields = []

    def filter_search(self, queryset, name, value):
        text = _clean(value, normalize_text, name) or ""
        return queryset.annotate(lname=Lower("name")).filter(lname__contains=text.lower())


class AttributeFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=AttributeDefinition.Kind.choices)
    type = filters.ChoiceFilter(choices=AttributeDefinition.Type.choices)

    class Meta:
        model = AttributeDefinition
        fields = []
