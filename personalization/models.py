from django.db import models
from django.db.models import Q

from segmentation.models import Segment


class Placement(models.Model):
    """A slot on a site or in an email (home hero, checkout banner) that shows targeted content."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.name


class Variant(models.Model):
    """Content for one placement, shown to one segment (or to everyone when `segment` is empty).

    For a customer, the active variant with the highest priority whose segment they belong to
    wins; a variant without a segment is the fallback.
    """

    placement = models.ForeignKey(Placement, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=200)
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.PROTECT, related_name="variants")
    priority = models.IntegerField(default=0, help_text="Higher wins when a customer matches several variants.")
    content = models.JSONField(default=dict, blank=True, help_text="Whatever the site renders: title, body, url...")
    active = models.BooleanField(default=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["placement", "-priority", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True) | Q(ends_at__isnull=True) | Q(starts_at__lt=models.F("ends_at")),
                name="variant_window_ordered",
            )
        ]

    def __str__(self):
        return f"{self.placement.key}: {self.name}"
