"""Events, sources, tags, the attribute registry, jobs and audit entries in the admin."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from customers.admin.common import ReadOnlyAdminMixin, pretty_json, when
from customers.attributes import OPERATOR_LABELS, OPERATORS_BY_TYPE
from customers.models import AttributeDefinition, AuditEntry, Event, Job, Source, Tag
from customers.models.profiles import new_write_key
from customers.normalize import NormalizationError, validate_custom_key
from customers.selectors import attribute_used_by
from customers.services.attributes import attribute_register, attribute_update_type


# ------------------------------------------------------------------------------
# Events (read-only)
# ------------------------------------------------------------------------------
class EventNameFilter(admin.SimpleListFilter):
    title = "event"
    parameter_name = "name"

    def lookups(self, request, model_admin):
        names = Event.objects.order_by().values_list("name", flat=True).distinct()
        return [(n, n) for n in sorted(names)]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ["admin/customers/customer.css"]}

    list_display = ["name", "customer_link", "when", "source", "received"]
    list_filter = [EventNameFilter, "source", ("timestamp", admin.DateFieldListFilter)]
    # Exact match: the customer's external id, or its anonymous id; LIKE over a big table is too slow.
    search_fields = ["=customer__external_id", "=customer__identities__value"]
    search_help_text = "Search by the customer's external id or anonymous id (exact)."
    list_select_related = ["customer", "source"]
    list_per_page = 100
    show_full_result_count = False
    fields = ["name", "customer_link", "source", "when", "received", "message_id", "properties_json", "context_json"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return False  # events leave only with their customer (erasure)

    @admin.display(description="Customer", ordering="customer")
    def customer_link(self, obj):
        url = reverse("admin:customers_customer_change", args=[obj.customer_id])
        return format_html('<a href="{}">{}</a>', url, obj.customer)

    @admin.display(description="Time", ordering="timestamp")
    def when(self, obj):
        return when(obj.timestamp)

    @admin.display(description="Received", ordering="received_at")
    def received(self, obj):
        return when(obj.received_at)

    @admin.display(description="Properties")
    def properties_json(self, obj):
        return pretty_json(obj.properties)

    @admin.display(description="Context")
    def context_json(self, obj):
        return pretty_json(obj.context)


# ------------------------------------------------------------------------------
# Sources
# ------------------------------------------------------------------------------
@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    class Media:
        css = {"all": ["admin/customers/customer.css"]}

    list_display = ["name", "enabled", "write_key", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["name"]
    actions = ["regenerate_key"]
    change_form_template = "admin/customers/source/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        return ["write_key", "created_at"] if obj else []

    def get_fields(self, request, obj=None):
        return ["name", "enabled", "write_key", "created_at"] if obj else ["name", "enabled"]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None:
            from customers.tracking.snippet import tracking_snippet

            extra_context["snippet"] = tracking_snippet(obj, request)
        return super().change_view(request, object_id, form_url, extra_context)

    def response_change(self, request, obj):
        if "_regenerate_key" in request.POST and self.has_change_permission(request, obj):
            self._regenerate(request, [obj])
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    @admin.action(description="Regenerate the write key", permissions=["change"])
    def regenerate_key(self, request, queryset):
        self._regenerate(request, list(queryset))

    def _regenerate(self, request, sources):
        for source in sources:
            source.write_key = new_write_key()
            source.save(update_fields=["write_key"])
        self.message_user(
            request,
            f"New write key for {', '.join(s.name for s in sources)}. Update the snippet on your site.",
            messages.WARNING,
        )


# ------------------------------------------------------------------------------
# Tags
# ------------------------------------------------------------------------------
@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "customer_count", "segment_count", "created_at"]
    search_fields = ["name"]
    ordering = ["name"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(n_customers=Count("customers", distinct=True), n_segments=Count("segments", distinct=True))
        )

    @admin.display(description="Customers", ordering="n_customers")
    def customer_count(self, obj):
        return obj.n_customers

    @admin.display(description="Segments", ordering="n_segments")
    def segment_count(self, obj):
        return obj.n_segments


# ------------------------------------------------------------------------------
# Attribute registry
# ------------------------------------------------------------------------------
class AttributeAddForm(forms.ModelForm):
    """Register a custom attribute before data arrives (decisions 11)."""

    key = forms.CharField(
        max_length=64,
        help_text="Without the custom. prefix: letters, digits and _ joined by dots (e.g. plan, address.zip).",
    )

    class Meta:
        model = AttributeDefinition
        fields = ["key", "label", "type", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label"].required = False

    def clean_key(self):
        key = self.cleaned_data["key"].strip()
        if key.startswith("custom."):
            key = key[len("custom.") :]
        try:
            validate_custom_key(key)
        except NormalizationError as exc:
            raise ValidationError(str(exc)) from exc
        if AttributeDefinition.objects.filter(key=f"custom.{key}").exists():
            raise ValidationError(f"custom.{key} is already registered.")
        return key


@admin.register(AttributeDefinition)
class AttributeDefinitionAdmin(admin.ModelAdmin):
    list_display = ["key", "label", "kind", "type", "operators"]
    list_filter = ["kind", "type"]
    search_fields = ["key", "label"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = AttributeAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["key", "label", "type", "description"]
        return ["key", "kind", "label", "type", "description", "operators", "used_by"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.kind != AttributeDefinition.Kind.CUSTOM:
            return ["key", "kind", "label", "type", "description", "operators", "used_by"]
        return ["key", "kind", "operators", "used_by"]

    @admin.display(description="Operators")
    def operators(self, obj):
        return ", ".join(OPERATOR_LABELS[o] for o in OPERATORS_BY_TYPE.get(obj.type, []))

    @admin.display(description="Used by segments")
    def used_by(self, obj):
        return ", ".join(attribute_used_by(key=obj.key)) or "—"

    def save_model(self, request, obj, form, change):
        if not change:
            created = attribute_register(
                key=form.cleaned_data["key"],
                type_=form.cleaned_data["type"],
                label=form.cleaned_data.get("label") or "",
                description=form.cleaned_data.get("description") or "",
            )
            obj.pk = created.pk
            return
        stored = AttributeDefinition.objects.get(pk=obj.pk)
        if obj.type != stored.type:
            # Changing the type re-coerces stored values in a background job (decisions 11).
            attribute_update_type(attribute=stored, type_=obj.type)
            self.message_user(request, f"{obj.key} is now {obj.get_type_display()}; stored values are being converted.")
        AttributeDefinition.objects.filter(pk=obj.pk).update(label=obj.label, description=obj.description)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.kind != AttributeDefinition.Kind.CUSTOM:
            return False
        return super().has_delete_permission(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        used = attribute_used_by(key=obj.key) if obj else []
        if used:
            self.message_user(
                request, f"{obj.key} cannot be deleted: it is used by the segments {', '.join(used)}.", messages.ERROR
            )
            return HttpResponseRedirect("../change/")
        return super().delete_view(request, object_id, extra_context)

    def delete_queryset(self, request, queryset):
        refused = []
        for attribute in queryset:
            if attribute.kind != AttributeDefinition.Kind.CUSTOM or attribute_used_by(key=attribute.key):
                refused.append(attribute.key)
            else:
                attribute.delete()
        if refused:
            self.message_user(
                request, f"Not deleted (built in or used by a segment): {', '.join(refused)}.", messages.ERROR
            )


# ------------------------------------------------------------------------------
# Jobs and audit entries (read-only)
# ------------------------------------------------------------------------------
@admin.register(Job)
class JobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ["admin/customers/customer.css"]}

    list_display = ["__str__", "kind", "status", "progress_display", "created_by", "created", "finished"]
    list_filter = ["kind", "status"]
    list_select_related = ["created_by"]
    fields = ["kind", "status", "progress_display", "created_by", "created", "started", "finished",
              "params_json", "result_json", "errors_json"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Progress")
    def progress_display(self, obj):
        if obj.total:
            pct = min(100, round(100 * obj.progress / obj.total))
            return format_html(
                '<progress value="{}" max="100"></progress> {}% ({} of {})', pct, pct, obj.progress, obj.total
            )
        return obj.progress

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj):
        return when(obj.created_at)

    @admin.display(description="Started")
    def started(self, obj):
        return when(obj.started_at)

    @admin.display(description="Finished", ordering="finished_at")
    def finished(self, obj):
        return when(obj.finished_at)

    @admin.display(description="Parameters")
    def params_json(self, obj):
        return pretty_json(obj.params)

    @admin.display(description="Result")
    def result_json(self, obj):
        return pretty_json(obj.result)

    @admin.display(description="Errors")
    def errors_json(self, obj):
        return pretty_json(obj.errors)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ["admin/customers/customer.css"]}

    list_display = ["action", "object_type", "object_id", "actor", "at"]
    list_filter = ["action", "object_type"]
    list_select_related = ["actor"]
    fields = ["action", "object_type", "object_id", "actor", "at", "details_json"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Details")
    def details_json(self, obj):
        return pretty_json(obj.details)
