from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from customers.models import Customer, Tag

KEY_PATTERN = r"^[A-Za-z0-9_\- ]{3,64}$"
RESERVED_KEYS = {"preview", "new", "add", "import", "export", "members", "recompute", "copy", "history"}


class Segment(models.Model):
    """A group of customers: dynamic (rule-based), static (hand-picked) or external (pushed in)."""

    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", "Auto-update"
        STATIC = "static", "Static"
        EXTERNAL = "external", "External"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPUTING = "computing", "Computing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DYNAMIC)
    definition = models.JSONField(null=True, blank=True)
    external_ref = models.CharField(max_length=500, blank=True)
    tags = models.ManyToManyField(Tag, related_name="segments", blank=True)
    prebuilt = models.BooleanField(default=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    member_count = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Versioning (style 10, decisions 27): each requested recompute bumps `version`; a run
    # applies only if no newer version was requested meanwhile.
    version = models.PositiveIntegerField(default=0)
    applied_version = models.PositiveIntegerField(default=0)
    computing_started_at = models.DateTimeField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    retry_count = models.PositiveSmallIntegerField(default=0)
    # What the definition depends on, classified on save (decisions 28):
    # {"events": [...], "attributes": [...], "segments": [...], "time": bool}
    dependencies = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("key"), name="segment_key_unique_ci"),
            models.CheckConstraint(
                condition=models.Q(kind="dynamic", definition__isnull=False) | ~models.Q(kind="dynamic"),
                name="segment_dynamic_has_definition",
            ),
        ]

    def __str__(self):
        return self.name


class Membership(models.Model):
    """Current membership; indexed both ways (segment -> customers, customer -> segments)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memberships")
    entered_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "customer"], name="membership_unique")]
        indexes = [models.Index(fields=["customer", "segment"], name="membership_customer_segment")]

    def __str__(self):
        return f"{self.customer_id} in {self.segment_id}"


class Reason(models.TextChoices):
    DEFINITION_CHANGED = "definition_changed", "Definition changed"
    SCHEDULED = "scheduled", "Scheduled recompute (time window passed)"
    EVENT = "event", "Event"
    PROFILE_CHANGE = "profile_change", "Profile change"
    IMPORT = "import", "Import"
    MANUAL = "manual", "Manual"
    API = "api", "API"
    MERGED = "merged", "Profiles merged"
    DEPENDENCY = "dependency", "Referenced segment changed"


class Snapshot(models.Model):
    """One recompute (or membership change batch): size and movement, for history and insights."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="snapshots")
    version = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField()
    entered = models.PositiveIntegerField(default=0)
    exited = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-finished_at", "-id"]
        indexes = [models.Index(fields=["segment", "finished_at"], name="snapshot_segment_time")]

    def __str__(self):
        return f"{self.segment_id} @ {self.finished_at:%Y-%m-%d %H:%M}: {self.size}"


class LedgerEntry(models.Model):
    """Every entry and exit, with its reason. Erased with the customer (decisions 44)."""

    class Change(models.TextChoices):
        ENTERED = "entered", "Entered"
        EXITED = "exited", "Exited"

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="ledger")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="ledger")
    change = models.CharField(max_length=7, choices=Change.choices)
    at = models.DateTimeField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    # e.g. {"event": "Order Completed", "event_at": "..."} or {"attribute": "country"}
    detail = models.JSONField(default=dict, blank=True)
    snapshot = models.ForeignKey(Snapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="entries")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["segment", "at"], name="ledger_segment_at"),
            models.Index(fields=["customer", "at"], name="ledger_customer_at"),
        ]

    def __str__(self):
        return f"{self.customer_id} {self.change} {self.segment_id}"
