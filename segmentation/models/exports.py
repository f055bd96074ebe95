"""Segment exports: definitions, runs and the member sets runs exported (issue 6, decisions 38-44, 48)."""

from django.conf import settings
from django.db import models

from customers.models import Customer, Job

from .segments import Segment

EXPORT_RUN_ACTIVE = ("queued", "running")


class Export(models.Model):
    """What to export (segment, columns, filters), how (format, mode) and where (destination, schedule)."""

    class Mode(models.TextChoices):
        FULL = "full", "Full (every member)"
        DELTA = "delta", "Delta (added and removed since the last successful run)"

    class Destination(models.TextChoices):
        DOWNLOAD = "download", "Download from the admin"
        FOLDER = "folder", "Folder on the server"
        S3 = "s3", "S3-compatible storage"
        WEBHOOK = "webhook", "Webhook (signed POST)"

    class ScheduleType(models.TextChoices):
        NONE = "none", "Not scheduled"
        CRONTAB = "crontab", "Crontab"
        INTERVAL = "interval", "Every N minutes"

    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="exports")
    name = models.CharField(max_length=200)
    # Attribute keys (profile, system, custom.*, "tags", "entered_at"), in file order.
    columns = models.JSONField(default=list)
    mandatory = models.JSONField(default=list, blank=True)
    delimiter = models.CharField(max_length=1, default=",", choices=[(",", "Comma (,)"), (";", "Semicolon (;)")])
    bom = models.BooleanField(default=False, help_text="Start the file with a UTF-8 byte order mark (for Excel).")
    filename_template = models.CharField(max_length=200, default="{segment}-{date:%Y-%m-%d}.csv")
    mode = models.CharField(max_length=5, choices=Mode.choices, default=Mode.FULL)
    destination_kind = models.CharField(max_length=10, choices=Destination.choices, default=Destination.DOWNLOAD)
    # folder: {"path"}; s3: {"storage", "prefix"}; webhook: {"url", "secret"}
    destination = models.JSONField(default=dict, blank=True)

    schedule_type = models.CharField(max_length=10, choices=ScheduleType.choices, default=ScheduleType.NONE)
    cron = models.CharField(
        max_length=100, blank=True, help_text='Five fields: minute hour day month weekday, e.g. "0 3 * * *".'
    )
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    timezone = models.CharField(max_length=64, blank=True, help_text="IANA time zone; empty means TIME_ZONE.")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    enabled = models.BooleanField(default=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(delimiter__in=[",", ";"]), name="export_delimiter_domain"),
            models.CheckConstraint(condition=models.Q(mode__in=["full", "delta"]), name="export_mode_domain"),
        ]

    def __str__(self):
        return self.name

    @property
    def zone_name(self) -> str:
        return self.timezone or settings.TIME_ZONE


class ExportRun(models.Model):
    """One execution of an export. At most one queued or running run per export (the claim)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Run now"
        SCHEDULE = "schedule", "Schedule"
        API = "api", "API"

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="runs")
    job = models.OneToOneField(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="export_run")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    members_total = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    rows_skipped = models.PositiveIntegerField(default=0)
    rows_added = models.PositiveIntegerField(default=0)
    rows_removed = models.PositiveIntegerField(default=0)
    # Internal run storage (MEDIA_ROOT/exports/): the admin's download copy, kept until retention ends.
    file = models.FileField(upload_to="exports/%Y/%m/", max_length=500, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    delivered_to = models.CharField(max_length=1000, blank=True)
    # Temporary files the run may leave behind if its worker dies; the reaper removes them.
    temp_paths = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    warning = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Two runs of one export never overlap: the insert of a second active run fails on both databases.
            models.UniqueConstraint(
                fields=["export"], condition=models.Q(status__in=EXPORT_RUN_ACTIVE), name="export_one_active_run"
            )
        ]
        indexes = [models.Index(fields=["export", "status", "finished_at"], name="exportrun_export_status")]

    def __str__(self):
        return f"{self.export_id} run #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in EXPORT_RUN_ACTIVE


class ExportedMember(models.Model):
    """The membership a run read, copied in one statement at run start (decisions 48).

    Delta runs, and every run on SQLite, copy it; a full run on PostgreSQL reads the membership in
    its one COPY statement instead. `customer` has no database constraint and is not cascaded: the
    row must outlive an erased profile so the next delta can report it `removed` by its external_id
    (decisions 40). Only the last successful delta run's rows are kept (plus an active run's).
    """

    class Change(models.TextChoices):
        NONE = "", "—"
        ADDED = "added", "Added"
        REMOVED = "removed", "Removed"

    # A run copies up to millions of rows in one INSERT ... SELECT, so this table carries only the
    # (run, customer) unique index and no foreign-key triggers; Django cascades run deletions.
    run = models.ForeignKey(
        ExportRun, on_delete=models.CASCADE, related_name="members", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    external_id = models.CharField(max_length=255, null=True, blank=True)
    entered_at = models.DateTimeField(null=True, blank=True)
    # Has every mandatory attribute, i.e. belongs to the exported set.
    included = models.BooleanField(default=True)
    change = models.CharField(max_length=7, choices=Change.choices, default="", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "customer"], name="exported_member_unique")]

    def __str__(self):
        return f"{self.customer_id} in run {self.run_id}"
