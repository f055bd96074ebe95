"""Customer profiles in the admin: list, search, filters, profile page, tag actions, CSV export, erasure.

Writes go through customers.services: the form validates with the same normalisers the
services use, and save_model / the actions / deletion call the services, so the admin cannot
store what the API or the import would refuse.
"""

from __future__ import annotations

import json

import pycountry
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from customers.admin.common import when
from customers.admin.imports import CustomerImportMixin
from customers.csvformat import csv_writer, format_cell
from customers.models import AttributeDefinition, Customer, CustomerIdentity, Event, Tag
from customers.normalize import NormalizationError, coerce, normalize_text, validate_custom_key
from customers.selectors import customer_countries, customer_list, tags_with_customers
from customers.services import customer_create, customer_erase, customer_update
from customers.services.attributes import custom_types
from customers.services.profiles import PROFILE_FIELDS, PROFILE_NORMALIZERS
from customers.services.tags import customers_tag_add, customers_tag_remove

EVENTS_PER_PAGE = 25
LEDGER_ROWS = 50


# ------------------------------------------------------------------------------
# Filters
# ------------------------------------------------------------------------------
class CountryFilter(admin.SimpleListFilter):
    title = "country"
    parameter_name = "country"

    def lookups(self, request, model_admin):
        named = []
        for code in customer_countries():
            country = pycountry.countries.get(alpha_2=code)
            named.append(
                (code, f"{getattr(country, 'common_name', None) or country.name} ({code})" if country else code)
            )
        return sorted(named, key=lambda item: item[1]) + [("none", "Unknown")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(country=None)
        if self.value():
            return queryset.filter(country=self.value())
        return queryset


class ProfileSourceFilter(admin.SimpleListFilter):
    """The profile attribute `source` (from data), not the tracking Source (decisions 18)."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        values = Customer.objects.exclude(source=None).order_by().values_list("source", flat=True).distinct()
        return [(v, v) for v in sorted(values, key=str.lower)]

    def queryset(self, request, queryset):
        return queryset.filter(source=self.value()) if self.value() else queryset


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in tags_with_customers().values_list("pk", "name")]

    def queryset(self, request, queryset):
        return queryset.filter(tags__pk=self.value()) if self.value() else queryset


class IdentifiedFilter(admin.SimpleListFilter):
    title = "identity"
    parameter_name = "identified"

    def lookups(self, request, model_admin):
        return [("yes", "Identified (external id)"), ("no", "Anonymous")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(external_id=None)
        if self.value() == "no":
            return queryset.filter(external_id=None)
        return queryset


# ------------------------------------------------------------------------------
# Forms
# ------------------------------------------------------------------------------
class PrettyJSONField(forms.JSONField):
    """One attribute per line, so the custom attributes read like a table."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


class CustomerForm(forms.ModelForm):
    # Country is typed as a code or an English name and normalised to alpha-2 (decisions 15).
    country = forms.CharField(required=False, max_length=100, help_text="ISO code (PL, GB) or English name.")
    tag_names = forms.CharField(
        required=False,
        label="Tags",
        help_text="Comma-separated. New tags are created.",
        widget=forms.TextInput(attrs={"size": 60}),
    )
    custom = PrettyJSONField(
        required=False,
        label="Custom attributes",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60, "class": "tessera-code"}),
        help_text='A JSON object, e.g. {"plan": "pro", "loyalty_points": 120}. Values must fit the registered '
        "type; new keys are registered with the type of their value.",
    )

    class Meta:
        model = Customer
        fields = ["external_id", *PROFILE_FIELDS, "custom"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["tag_names"].initial = ", ".join(t.name for t in self.instance.tags.all())

    def _clean_profile(self, key):
        try:
            return PROFILE_NORMALIZERS[key](self.cleaned_data.get(key))
        except NormalizationError as exc:
            raise ValidationError(str(exc)) from exc

    def clean_external_id(self):
        return normalize_text(self.cleaned_data.get("external_id"))

    def clean_custom(self):
        value = self.cleaned_data.get("custom")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValidationError("Enter a JSON object of attribute: value pairs.")
        types = custom_types()
        problems = []
        clean = {}
        for key, item in value.items():
            try:
                validate_custom_key(key)
                clean[key] = coerce(item, types[key]) if key in types else item
            except NormalizationError as exc:
                registered = f" (registered as {types[key]})" if key in types else ""
                problems.append(f"{key}: {exc}{registered}")
        if problems:
            raise ValidationError(problems)
        return clean

    def clean_tag_names(self):
        names = [normalize_text(n) for n in (self.cleaned_data.get("tag_names") or "").split(",")]
        return [n for n in names if n]


for _key in PROFILE_FIELDS:
    # clean_<field> for every profile field: the services' normaliser, as a form error.
    setattr(CustomerForm, f"clean_{_key}", lambda self, _k=_key: self._clean_profile(_k))


class TagActionForm(forms.Form):
    tag = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"list": "tessera-tags", "autofocus": True}))

    def clean_tag(self):
        name = normalize_text(self.cleaned_data["tag"])
        if not name:
            raise ValidationError("Enter a tag name.")
        if "," in name:
            raise ValidationError("A tag may not contain a comma.")
        return name


class FirstPagePaginator(Paginator):
    """Reads the first page (one row more) before counting.

    When every match fits on it, the usual search for one person, those rows are the count and
    no COUNT(*) reads a million profiles a second time; otherwise it counts as usual and page 1
    reuses the rows already read. Only for requests of the first page (`first_page`).
    """

    def __init__(self, *args, first_page: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.first_page = first_page

    @cached_property
    def head(self) -> list:
        return list(self.object_list[: self.per_page + 1])

    @cached_property
    def count(self) -> int:
        if self.first_page and len(self.head) <= self.per_page:
            return len(self.head)
        return super().count

    def page(self, number):
        number = self.validate_number(number)
        if number == 1 and "head" in self.__dict__:
            return self._get_page(self.head[: self.per_page], number, self)
        return super().page(number)


class CustomerChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        head = self.paginator.__dict__.get("head")
        if head is not None and not self.multi_page:  # all of them, already read
            self.result_list = head


# ------------------------------------------------------------------------------
# Admin
# ------------------------------------------------------------------------------
@admin.register(Customer)
class CustomerAdmin(CustomerImportMixin, admin.ModelAdmin):
    form = CustomerForm
    list_display = ["display_id", "email", "full_name", "country", "tag_list", "last_seen"]
    list_display_links = ["display_id", "email"]
    search_fields = ["external_id", "email", "first_name", "last_name"]
    search_help_text = "Search by email, name or external id."
    list_filter = [
        IdentifiedFilter,
        CountryFilter,
        "gender",
        ProfileSourceFilter,
        TagFilter,
        ("first_seen_at", admin.DateFieldListFilter),
        ("last_seen_at", admin.DateFieldListFilter),
    ]
    list_per_page = 50
    # A million profiles: skip the second COUNT(*) for the unfiltered total.
    show_full_result_count = False
    # Recently active first; never-seen profiles last on both databases (PostgreSQL sorts NULL first).
    ordering = [F("last_seen_at").desc(nulls_last=True), "-id"]
    actions = ["add_tag", "remove_tag", "export_csv", "delete_selected"]
    empty_value_display = "—"
    readonly_fields = [
        "public_id",
        "anonymous_ids",
        "created",
        "updated",
        "first_seen",
        "last_seen",
        "event_count",
        "orders_count",
        "total_spent",
        "last_order",
    ]
    fieldsets = [
        ("Identity", {"fields": ["external_id", "public_id", "anonymous_ids"]}),
        (
            "Profile",
            {
                "fields": [
                    "email",
                    "phone",
                    ("first_name", "last_name"),
                    ("gender", "birth_date"),
                    ("country", "city"),
                    ("language", "source"),
                ]
            },
        ),
        ("Custom attributes and tags", {"fields": ["custom", "tag_names"]}),
        (
            "Activity (system attributes)",
            {
                "fields": [
                    ("first_seen", "last_seen"),
                    ("event_count", "orders_count"),
                    ("total_spent", "last_order"),
                    ("created", "updated"),
                ]
            },
        ),
    ]
    add_fieldsets = fieldsets[:3]
    change_form_template = "admin/customers/customer/change_form.html"
    change_list_template = "admin/customers/customer/change_list.html"

    class Media:
        css = {"all": ["admin/customers/customer.css"]}

    def get_fieldsets(self, request, obj=None):
        return self.fieldsets if obj else self.add_fieldsets

    def get_changelist(self, request, **kwargs):
        return CustomerChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        first_page = request.GET.get(PAGE_VAR, "1") == "1"
        return FirstPagePaginator(queryset, per_page, orphans, allow_empty_first_page, first_page=first_page)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    def get_object(self, request, object_id, from_field=None):
        # The profile page shows the system attributes, computed in SQL by the selector.
        try:
            return customer_list().get(pk=int(object_id))
        except (Customer.DoesNotExist, ValueError, TypeError):
            return None

    # -- columns ------------------------------------------------------------------------------
    @admin.display(description="ID", ordering="external_id")
    def display_id(self, obj):
        if obj.external_id:
            return obj.external_id
        return format_html('<span class="tessera-muted">anonymous · id:{}</span>', obj.pk)

    @admin.display(description="Name", ordering="last_name")
    def full_name(self, obj):
        return " ".join(p for p in (obj.first_name, obj.last_name) if p) or "—"

    @admin.display(description="Tags")
    def tag_list(self, obj):
        tags = obj.tags.all()
        if not tags:
            return "—"
        return format_html_join(" ", '<span class="tessera-tag">{}</span>', ((t.name,) for t in tags))

    @admin.display(description="Last seen", ordering="last_seen_at")
    def last_seen(self, obj):
        return when(obj.last_seen_at)

    @admin.display(description="First seen", ordering="first_seen_at")
    def first_seen(self, obj):
        return when(obj.first_seen_at)

    @admin.display(description="Created")
    def created(self, obj):
        return when(obj.created_at)

    @admin.display(description="Attributes updated")
    def updated(self, obj):
        return when(obj.updated_at)

    @admin.display(description="Public id")
    def public_id(self, obj):
        return obj.public_id

    @admin.display(description="Anonymous ids")
    def anonymous_ids(self, obj):
        values = [i.value for i in obj.identities.all()]
        return ", ".join(values) or "—"

    @admin.display(description="Number of events")
    def event_count(self, obj):
        return getattr(obj, "event_count", "—")

    @admin.display(description="Number of orders")
    def orders_count(self, obj):
        return getattr(obj, "orders_count", "—")

    @admin.display(description="Total spent")
    def total_spent(self, obj):
        value = getattr(obj, "total_spent", None)
        return "—" if value is None else format_cell(value, "number")

    @admin.display(description="Last order")
    def last_order(self, obj):
        return when(getattr(obj, "last_order_at", None))

    # -- profile page -------------------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, object_id)
        if obj is not None:
            extra_context.update(self._profile_context(request, obj))
        return super().change_view(request, object_id, form_url, extra_context)

    def _profile_context(self, request, obj):
        events = Event.objects.filter(customer=obj).select_related("source").order_by("-timestamp", "-id")
        page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("events_page"))
        for event in page:
            event.when = when(event.timestamp)
            event.summary = _event_summary(event)
        context = {"events_page": page, "memberships": [], "ledger": []}
        # Read through segmentation's selectors: memberships are that app's data.
        from segmentation.selectors import customer_ledger, customer_segments

        memberships = list(customer_segments(obj))
        ledger = list(customer_ledger(obj)[:LEDGER_ROWS])
        for m in memberships:
            m.when = when(m.entered_at)
        for entry in ledger:
            entry.when = when(entry.at)
        context.update(memberships=memberships, ledger=ledger)
        return context

    # -- saving through the services ----------------------------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        values = {key: data.get(key) for key in PROFILE_FIELDS}
        custom = dict(data.get("custom") or {})
        with transaction.atomic():
            if change:
                # The form already copied its values onto `obj`; the service must compare with
                # the stored row to know what changed (updated_at, segment re-evaluation).
                customer = Customer.objects.select_for_update().get(pk=obj.pk)
                custom.update({k: None for k in customer.custom if k not in custom})  # removed keys
                if data.get("external_id") != customer.external_id:
                    customer.external_id = data.get("external_id")
                customer_update(customer=customer, tags=data.get("tag_names"), custom=custom, **values)
            else:
                customer = customer_create(
                    external_id=data.get("external_id"), tags=data.get("tag_names"), custom=custom, **values
                )
        obj.pk = customer.pk
        obj.custom = customer.custom

    def save_related(self, request, form, formsets, change):
        # Tags were saved by the service; the form has no many-to-many fields of its own.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    # -- erasure (decisions 44) ---------------------------------------------------------------
    def delete_model(self, request, obj):
        customer_erase(customer=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for customer in queryset.order_by("pk").iterator(chunk_size=500):
            customer_erase(customer=customer, actor=request.user)

    def get_deleted_objects(self, objs, request):
        """A short summary instead of one line per event, and no per-model permission check.

        Erasure removes the profile with its events, ids, memberships and ledger rows; a role
        allowed to delete customers may erase them even without delete permission on events
        (which nobody should use directly).
        """
        objs = list(objs)
        ids = [o.pk for o in objs]
        events = Event.objects.filter(customer__in=ids).count()
        identities = CustomerIdentity.objects.filter(customer__in=ids).count()
        lines = [f"Customer: {o} (id:{o.pk})" for o in objs[:100]]
        if len(objs) > 100:
            lines.append(f"… and {len(objs) - 100} more customers")
        lines.append(f"{events} events, {identities} anonymous or previous ids, and their segment memberships")
        counts = {"customers": len(objs), "events": events, "identities": identities}
        return lines, counts, set(), []

    # -- actions ------------------------------------------------------------------------------
    @admin.action(description="Add a tag to the selected customers", permissions=["change"])
    def add_tag(self, request, queryset):
        return self._tag_action(request, queryset, add=True)

    @admin.action(description="Remove a tag from the selected customers", permissions=["change"])
    def remove_tag(self, request, queryset):
        return self._tag_action(request, queryset, add=False)

    def _tag_action(self, request, queryset, *, add: bool):
        form = TagActionForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            name = form.cleaned_data["tag"]
            retag = customers_tag_add if add else customers_tag_remove
            changed = retag(customers=queryset, name=name)
            verb = "added to" if add else "removed from"
            self.message_user(request, f"Tag “{name}” {verb} {len(changed)} customer(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Add a tag" if add else "Remove a tag",
            "add": add,
            "form": form,
            "queryset": queryset[:20],
            "count": queryset.count(),
            "tags": Tag.objects.values_list("name", flat=True),
            "action": "add_tag" if add else "remove_tag",
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "opts": self.model._meta,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/customers/customer/tag_action.html", context)

    @admin.action(description="Export the selected customers (CSV)", permissions=["view"])
    def export_csv(self, request, queryset):
        response = StreamingHttpResponse(_export_rows(queryset), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="customers-{timezone.now():%Y-%m-%d}.csv"'
        return response


def _event_summary(event) -> str:
    props = event.properties or {}
    if event.name == "Order Completed" and "revenue" in props:
        items = props.get("products") or []
        return f"{format_cell(props['revenue'], 'number')} {props.get('currency', '')} · {len(items)} item(s)".strip()
    for key in ("title", "name", "subject", "path"):
        if props.get(key):
            return str(props[key])
    return ", ".join(f"{k}: {v}" for k, v in list(props.items())[:3])


class _Echo:
    def write(self, value):
        return value


def _export_rows(queryset):
    """Canonical CSV (decisions 38): attribute keys as headers, custom attributes in registry order."""
    custom = list(
        AttributeDefinition.objects.filter(kind=AttributeDefinition.Kind.CUSTOM)
        .order_by("key")
        .values_list("key", "type")
    )
    header = [
        "external_id",
        *PROFILE_FIELDS,
        "tags",
        *(k for k, _ in custom),
        "created_at",
        "first_seen_at",
        "last_seen_at",
    ]
    types = dict(AttributeDefinition.objects.values_list("key", "type"))
    writer = csv_writer(_Echo())
    yield "\ufeff" + writer.writerow(header)
    queryset = queryset.prefetch_related("tags").order_by("pk")
    for c in queryset.iterator(chunk_size=1000):
        row = [format_cell(c.external_id, "string")]
        row += [format_cell(getattr(c, f), types.get(f)) for f in PROFILE_FIELDS]
        row.append(format_cell([t.name for t in c.tags.all()], "list"))
        row += [format_cell((c.custom or {}).get(k[len("custom.") :]), t) for k, t in custom]
        row += [format_cell(getattr(c, f), "datetime") for f in ("created_at", "first_seen_at", "last_seen_at")]
        yield writer.writerow(row)
