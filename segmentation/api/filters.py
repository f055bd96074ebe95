"""Filters for /api/segments/: kind, status, tag (by name, ignoring case), search."""

import django_filters
from django.db.models import Q
from django.db.models.functions import Lower

from segmentation.models import Segment


class SegmentFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Segment.Kind.choices)
    status = django_filters.ChoiceFilter(choices=Segment.Status.choices)
    tag = django_filters.CharFilter(method="filter_tag", help_text="Tag name (ignores case).")
    search = django_filters.CharFilter(method="filter_search", help_text="Text in the key, name or description.")

    class Meta:
        model = Segment
        fields = ["kind", "status", "prebuilt"]

    def filter_tag(self, queryset, name, value):
        ids = Segment.tags.through.objects.annotate(ltag=Lower("tag__name")).filter(ltag=value.strip().lower())
        return queryset.filter(pk__in=ids.values("segment_id"))

    def filter_search(self, queryset, name, value):
        term = value.strip()
        return queryset.filter(Q(key__icontains=term) | Q(name__icontains=term) | Q(description__icontains=term))
