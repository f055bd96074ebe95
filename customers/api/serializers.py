"""Serializers for the customers API. They check shapes; values are normalised by the services."""

from django.db.models.functions import Lower
from rest_framework import serializers

from customers.attributes import OPERATORS_BY_TYPE
from customers.models import AttributeDefinition, Customer, Event, Job, Tag
from customers.normalize import NormalizationError, normalize_text, validate_custom_key

PROFILE_WRITE_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "gender",
    "birth_date",
    "country",
    "city",
    "language",
    "source",
)


class TagNamesField(serializers.ListField):
    child = serializers.CharField(max_length=100)

    def to_representation(self, data):
        return [tag.name for tag in data.all()]


def _text(**kwargs):
    return serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False, **kwargs)


class CustomerSerializer(serializers.ModelSerializer):
    external_id = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=255,
        trim_whitespace=False,
        help_text="Your system's user id; set on create, it cannot be changed through the API.",
    )
    anonymous_ids = serializers.SerializerMethodField()
    email = _text(max_length=254)
    phone = _text(max_length=64)
    first_name = _text(max_length=200)
    last_name = _text(max_length=200)
    gender = _text(max_length=40, help_text="female, male, other (or a synonym such as f, m); unknown is null.")
    birth_date = serializers.DateField(required=False, allow_null=True)
    country = _text(max_length=100, help_text="ISO 3166-1 alpha-2, alpha-3 or English name; stored as alpha-2.")
    city = _text(max_length=200)
    language = _text(max_length=35)
    source = _text(max_length=200)
    custom = serializers.DictField(
        required=False, help_text="Custom attributes by key; on update a null value removes the attribute."
    )
    tags = TagNamesField(required=False, help_text="Tag names; replaces the set.")
    event_count = serializers.IntegerField(read_only=True)
    orders_count = serializers.IntegerField(read_only=True)
    total_spent = serializers.FloatField(read_only=True, help_text="Sum of revenue of Order Completed events.")
    last_order_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "anonymous_ids",
            *PROFILE_WRITE_FIELDS,
            "custom",
            "tags",
            "created_at",
            "updated_at",
            "first_seen_at",
            "last_seen_at",
            "event_count",
            "orders_count",
            "total_spent",
            "last_order_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at", "first_seen_at", "last_seen_at"]

    def get_anonymous_ids(self, obj) -> list[str]:
        identities = getattr(obj, "anonymous_identities", None)
        if identities is None:
            identities = obj.identities.filter(kind="anonymous").order_by("id")
        return [i.value for i in identities]

    def validate_external_id(self, value):
        try:
            value = normalize_text(value)  # empty is null (decisions 17)
        except NormalizationError as exc:
            raise serializers.ValidationError(str(exc))
        if self.instance is not None and value != self.instance.external_id:
            raise serializers.ValidationError("The external id cannot be changed through the API.")
        return value

    def validate_tags(self, value):
        for name in value:
            if "," in name:
                raise serializers.ValidationError(f"Tag “{name.strip()}” may not contain a comma.")
        return value


class EventSerializer(serializers.ModelSerializer):
    customer = serializers.SerializerMethodField(help_text="The customer's external id, or id:<id> if anonymous.")

    class Meta:
        model = Event
        fields = [
            "id",
            "customer",
            "customer_id",
            "name",
            "timestamp",
            "received_at",
            "properties",
            "context",
            "source",
            "message_id",
        ]

    def get_customer(self, obj) -> str:
        return obj.customer.public_id


class MembershipSerializer(serializers.Serializer):
    segment = serializers.CharField(source="segment.key")
    name = serializers.CharField(source="segment.name")
    kind = serializers.CharField(source="segment.kind")
    entered_at = serializers.DateTimeField()


class LedgerEntrySerializer(serializers.Serializer):
    segment = serializers.CharField(source="segment.key")
    change = serializers.ChoiceField(choices=["entered", "exited"])
    at = serializers.DateTimeField()
    reason = serializers.CharField()
    reason_label = serializers.CharField(source="get_reason_display")
    detail = serializers.DictField()


class AttributeSerializer(serializers.ModelSerializer):
    key = serializers.CharField(
        max_length=71,
        help_text="custom.<key> (the prefix may be left out when creating); parts of [A-Za-z0-9_] joined by dots.",
    )
    label = serializers.CharField(max_length=200, required=False, allow_blank=True)
    type = serializers.ChoiceField(choices=AttributeDefinition.Type.choices)
    operators = serializers.SerializerMethodField()

    class Meta:
        model = AttributeDefinition
        fields = ["key", "label", "kind", "type", "description", "operators", "created_at", "updated_at"]
        read_only_fields = ["kind", "created_at", "updated_at"]
        extra_kwargs = {"description": {"required": False}}

    def get_operators(self, obj) -> list[str]:
        return list(OPERATORS_BY_TYPE.get(obj.type, []))

    def validate_key(self, value):
        if self.instance is not None and value != self.instance.key:
            raise serializers.ValidationError("The key cannot be changed.")
        key = value[len("custom.") :] if value.startswith("custom.") else value
        try:
            validate_custom_key(key)
        except NormalizationError as exc:
            raise serializers.ValidationError(str(exc))
        return key


class TagSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=100, trim_whitespace=False)

    class Meta:
        model = Tag
        fields = ["id", "name", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_name(self, value):
        try:
            name = normalize_text(value)
        except NormalizationError as exc:
            raise serializers.ValidationError(str(exc))
        if not name:
            raise serializers.ValidationError("A tag name cannot be empty.")
        if "," in name:
            raise serializers.ValidationError("A tag name may not contain a comma.")
        others = Tag.objects.annotate(lname=Lower("name")).filter(lname=name.lower())
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise serializers.ValidationError(f"A tag named “{name}” already exists (names ignore case).")
        return name


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "total",
            "result",
            "errors",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV file with the same columns as the admin import.")
    dry_run = serializers.BooleanField(default=False, help_text="Validate and report without writing.")
    delimiter = serializers.ChoiceField(
        choices=[",", ";"], required=False, help_text="Column delimiter; detected from the header when left out."
    )
