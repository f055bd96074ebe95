from django.db import models

from .profiles import Customer, Source

# A numeric string (decisions 4); PostgreSQL's `$` never matches before a trailing newline,
# Python's does, hence `\Z` on SQLite (the REGEXP there is Python's re).
NUMERIC_PATTERN_PG = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
NUMERIC_PATTERN_PY = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?\Z"


class NumericField(models.Field):
    """An exact `numeric` on PostgreSQL (no precision limit), REAL on SQLite."""

    def db_type(self, connection):
        return "numeric" if connection.vendor == "postgresql" else "real"


class Revenue(models.Func):
    """`properties.revenue` as a number: a JSON number or numeric string, else NULL (decisions 4, 5).

    The same value the segment engine's JsonNumber("properties", ["revenue"], strings=True)
    computes, stored so that `total_spent` and revenue aggregates read it from an index instead of
    every order's JSON (docs/indexes.md).
    """

    arity = 0
    output_field = NumericField()

    def as_postgresql(self, compiler, connection, **extra):
        x = "(properties -> 'revenue')"
        sql = (
            f"CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x} #>> '{{}}')::numeric "
            f"WHEN jsonb_typeof({x}) = 'string' AND ({x} #>> '{{}}') ~ '{NUMERIC_PATTERN_PG}' "
            f"THEN ({x} #>> '{{}}')::numeric END"
        )
        return sql, ()

    def as_sqlite(self, compiler, connection, **extra):
        path = "'$.\"revenue\"'"
        sql = (
            f"CASE WHEN json_type(properties, {path}) IN ('integer', 'real') THEN json_extract(properties, {path}) "
            f"WHEN json_type(properties, {path}) = 'text' AND json_extract(properties, {path}) "
            f"REGEXP '{NUMERIC_PATTERN_PY}' THEN CAST(json_extract(properties, {path}) AS REAL) END"
        )
        return sql, ()


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
    revenue = models.GeneratedField(expression=Revenue(), output_field=NumericField(), db_persist=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["customer", "name", "timestamp"], name="event_cust_name_ts"),
            # INCLUDE revenue (PostgreSQL only): total_spent and revenue sums stay index-only.
            models.Index(fields=["name", "timestamp", "customer"], include=["revenue"], name="event_name_ts_cust"),
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
