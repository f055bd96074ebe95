"""Serializers for the segments API: shapes only; rules live in segmentation.services."""

import logging

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from segmentation.models import Membership, Segment, Snapshot

logger = logging.getLogger(__name__)


def segment_summary(segment: Segment) -> str:
    if segment.kind == Segment.Kind.STATIC:
        return "Customers added by hand, by import or through the API."
    if segment.kind == Segment.Kind.EXTERNAL:
        return f"Customers pushed in from {segment.external_ref or segment.key}."
    from segmentation.engine import summarize

    try:
        return summarize(segment.definition)
    except Exception:  # a definition stored by an older engine must not break listing
        logger.exception("Cannot summarise segment %s", segment.key)
        return ""


class TagNamesField(serializers.ListField):
    """Tag names in and out (the model holds Tag rows)."""

    child = serializers.CharField(max_length=100)

    def to_representation(self, value):
        return sorted(tag.name for tag in value.all())


@extend_schema_field({"type": "string", "description": "`dynamic`, `static` or `external`."})
class SegmentKindField(serializers.ChoiceField):
    """Documented as text: an enum used by several components collides with the other `kind`
    enums of the API (attributes, destinations) in drf-spectacular's naming."""

    def __init__(self, **kwargs):
        super().__init__(choices=Segment.Kind.choices, **kwargs)


class SegmentSerializer(serializers.Serializer):
    key = serializers.CharField(
        required=False, trim_whitespace=False, help_text="3–64 letters, digits, hyphens, underscores or spaces."
    )
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = SegmentKindField(default=Segment.Kind.DYNAMIC)
    definition = serializers.JSONField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Rules of an auto-update segment (definition language v1).",
    )
    summary = serializers.SerializerMethodField()
    tags = TagNamesField(required=False, default=list)
    status = serializers.CharField(read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    computed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    external_ref = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    prebuilt = serializers.BooleanField(read_only=True)
    owner = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_summary(self, segment) -> str:
        return segment_summary(segment)

    def get_owner(self, segment) -> str | None:
        return segment.owner.get_username() if segment.owner_id else None


class SegmentUpdateSerializer(SegmentSerializer):
    """PUT/PATCH: every field optional; only the fields sent change."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = SegmentKindField(required=False)
    definition = serializers.JSONField(required=False, allow_null=True)
    tags = TagNamesField(required=False)
    external_ref = serializers.CharField(required=False, allow_blank=True, max_length=500)


class PreviewInputSerializer(serializers.Serializer):
    definition = serializers.JSONField(help_text="The definition to try, unsaved.")
    segment = serializers.CharField(required=False, help_text="Key of a saved segment to compare with.")


class PreviewSampleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)


class PreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sample = PreviewSampleSerializer(many=True, help_text="The first 20 matching customers by id.")
    summary = serializers.CharField()
    added = serializers.IntegerField(required=False, help_text="Would enter the compared segment.")
    removed = serializers.IntegerField(required=False, help_text="Would leave the compared segment.")


class MemberSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="customer_id")
    external_id = serializers.CharField(source="customer.external_id", allow_null=True)
    email = serializers.CharField(source="customer.email", allow_null=True)

    class Meta:
        model = Membership
        fields = ["id", "external_id", "email", "entered_at"]


class MembersChangeSerializer(serializers.Serializer):
    external_ids = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False),
        allow_empty=False,
        max_length=10_000,
        help_text="External ids (or `id:<id>`), at most 10,000.",
    )


class MembersResultSerializer(serializers.Serializer):
    added = serializers.IntegerField(required=False)
    removed = serializers.IntegerField(required=False)
    unchanged = serializers.IntegerField()
    unknown = serializers.ListField(child=serializers.CharField())


class CopySerializer(serializers.Serializer):
    key = serializers.CharField(required=False, trim_whitespace=False)
    name = serializers.CharField(max_length=200)


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "finished_at", "size", "entered", "exited", "reason", "duration_ms", "version"]
