from django.db import models

from .profiles import Customer, Source


class Event(models.Model):
    """A tracked event (track, page, screen, group) of one customer.

    Indexes follow the engine's access paths (see docs/indexes.md for EXPLAIN output):
    - (customer, name, timestamp): correlated per-customer conditions (counts, sequences,
      incremental re-evaluation of one customer);
    - (name, timestamp, customer): set-based conditions ("customers with an Order Completed in
      the last 7 days") scan one name's time range;
    - (customer, timestamp): the profile timeline and event_count.
    """

    # No single-column index: the composites below start with customer_id, and the planner would
    # otherwise pick the narrow one and filter on the table (docs/indexes.md).
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events", db_index=False)
    source = models.ForeignKey(Source, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    name = models.CharField(max_length=200)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    message_id = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["customer", "name", "timestamp"], name="event_cust_name_ts"),
            models.Index(fields=["name", "timestamp", "customer"], name="event_name_ts_cust"),
            models.Index(fields=["customer", "timestamp"], name="event_cust_ts"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "message_id"],
                condition=models.Q(message_id__isnull=False),
                name="event_message_id_unique_per_source",
            )
        ]

    def __str__(self):
        return f"{self.name} @ {self.timestamp:%Y-%m-%d %H:%M}"
