import secrets

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from .indexes import EqualityIndex


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


class Tag(models.Model):
    """One namespace of tags for customers and segments (decisions 12)."""

    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="tag_name_unique_ci"),
            models.CheckConstraint(condition=~models.Q(name__contains=","), name="tag_name_no_comma"),
            models.CheckConstraint(condition=~models.Q(name=""), name="tag_name_not_empty"),
        ]

    def __str__(self):
        return self.name


class Source(models.Model):
    """A website, app or backend that sends events with its write key."""

    name = models.CharField(max_length=200)
    write_key = models.CharField(max_length=64, unique=True, default=new_write_key)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Customer(models.Model):
    """A customer profile.

    Text values are stored normalised (NFC, trimmed, empty -> NULL); `email` is lower-cased.
    `custom` holds custom attributes in their registered type: numbers as JSON numbers,
    booleans as JSON booleans, dates as "YYYY-MM-DD", datetimes as "YYYY-MM-DDTHH:MM:SS.ffffffZ"
    (fixed width, so text order is time order), lists as JSON arrays.
    System attributes (event_count, orders_count, total_spent, last_order_at, age) are computed
    in SQL from events at evaluation time; see docs/decisions.md.
    """

    class Gender(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"

    # Uniqueness and the email/country indexes are declared in Meta: a field's unique=True or
    # db_index=True also makes PostgreSQL build a varchar_pattern_ops "_like" twin, which no query
    # uses (text operators compare lower(...) and admin search is a contains) but every insert pays.
    external_id = models.CharField(max_length=255, null=True, blank=True)
    email = models.CharField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=64, null=True, blank=True)
    first_name = models.CharField(max_length=200, null=True, blank=True)
    last_name = models.CharField(max_length=200, null=True, blank=True)
    gender = models.CharField(max_length=10, choices=Gender.choices, null=True, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    country = models.CharField(max_length=2, null=True, blank=True)
    city = models.CharField(max_length=200, null=True, blank=True)
    language = models.CharField(max_length=35, null=True, blank=True)
    source = models.CharField(max_length=200, null=True, blank=True)
    custom = models.JSONField(default=dict, blank=True)
    # The link table has no database foreign keys (see docs/decisions.md, "Customer tag links"):
    # PostgreSQL checks them one row at a time, which cost a CSV import more than writing the links.
    # Deletes of customers and tags go through the ORM, whose collector removes their links.
    tags = models.ManyToManyField(Tag, related_name="customers", blank=True, db_constraint=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Changes only with attributes or tags (decisions 16), so it is set by services, not auto_now.
    updated_at = models.DateTimeField(default=timezone.now)
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Only ever compared with "=" (matching, lookups, the engine's "is"); see EqualityIndex.
            EqualityIndex(fields=["email"], name="customer_email_idx"),
            models.Index(fields=["country"], name="customer_country_idx"),
            # Partial: profiles never seen (every imported one) stay out of it. Every query it
            # serves compares last_seen_at, which implies NOT NULL; none sorts by it through the
            # index (the admin's newest-first order puts NULLs last, which a btree can't give).
            models.Index(
                fields=["last_seen_at"], name="customer_last_seen_idx", condition=models.Q(last_seen_at__isnull=False)
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="customer_external_id_unique"),
            models.CheckConstraint(
                condition=models.Q(gender__isnull=True) | models.Q(gender__in=["female", "male", "other"]),
                name="customer_gender_domain",
            ),
        ]

    def __str__(self):
        return self.external_id or self.email or f"id:{self.pk}"

    @property
    def public_id(self) -> str:
        return self.external_id or f"id:{self.pk}"


class CustomerIdentity(models.Model):
    """Secondary identifiers that resolve to a profile: anonymous ids and aliased user ids."""

    class Kind(models.TextChoices):
        ANONYMOUS = "anonymous", "Anonymous id"
        ALIAS = "alias", "Previous user id"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    value = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="identity_unique")]

    def __str__(self):
        return f"{self.kind}:{self.value}"
