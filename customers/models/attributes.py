from django.db import models


class AttributeDefinition(models.Model):
    """The attribute registry: everything a segment definition may name.

    Profile and system attributes are built in (customers.attributes.BUILTIN_ATTRIBUTES) and
    synced into this table after migrations; custom attributes are registered on first sight
    with an inferred type and can be corrected in the admin.
    """

    class Kind(models.TextChoices):
        PROFILE = "profile", "Profile"
        SYSTEM = "system", "System"
        CUSTOM = "custom", "Custom"

    class Type(models.TextChoices):
        STRING = "string", "Text"
        NUMBER = "number", "Number"
        BOOLEAN = "boolean", "True/false"
        DATE = "date", "Date"
        DATETIME = "datetime", "Date and time"
        LIST = "list", "List"

    key = models.CharField(max_length=80, unique=True)
    label = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    type = models.CharField(max_length=10, choices=Type.choices)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "key"]

    def __str__(self):
        return self.key

    @property
    def custom_key(self) -> str | None:
        return self.key[len("custom.") :] if self.kind == self.Kind.CUSTOM else None
