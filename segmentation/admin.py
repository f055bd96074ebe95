"""The marketer's segment admin: list, builder (change form), segment page, manual members.

Writes go through segmentation.services; the custom pages and JSON endpoints the builder and
the manual-members page call live in segmentation/admin_views.py and are mounted by get_urls().
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import ngettext

from segmentation import admin_views, services
from segmentation.models import LedgerEntry, Segment, Snapshot

EVERYONE = {"match": "all", "conditions": []}


class SegmentForm(forms.ModelForm):
    # The builder writes the JSON into this hidden field; it is validated by the engine below
    # and again by the services on save.
    definition = forms.JSONField(required=False, widget=forms.HiddenInput)
    tag_names = forms.CharField(
        label="Tags",
        required=False,
        help_text="Used to organise the segment list. Type to pick or create tags.",
        widget=forms.TextInput(attrs={"class": "vTextField", "data-tag-chooser": "1"}),
    )

    class Meta:
        model = Segment
        fields = ["name", "key", "kind", "description", "external_ref", "definition"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "key" in self.fields:
            self.fields["key"].required = False
            self.fields[
                "key"
            ].help_text = (
                "Letters, digits, hyphens, underscores and spaces, 3–64 characters. Made from the name when empty."
            )
        if self.instance.pk and "tag_names" in self.fields:
            self.fields["tag_names"].initial = ", ".join(self.instance.tags.values_list("name", flat=True))
        elif "definition" in self.fields:
            self.fields["definition"].initial = EVERYONE
        self.definition_problems: list[dict] = []

    def clean_tag_names(self):
        names = [n.strip() for n in self.cleaned_data.get("tag_names", "").split(",")]
        return list(dict.fromkeys(n for n in names if n))

    def clean(self):
        cleaned = super().clean()
        from segmentation.services.segments import definition_check, segment_key_problem

        exclude_pk = self.instance.pk
        key = (cleaned.get("key") or "").strip()
        if key and "key" in self.fields and key != self.instance.key:
            problem = segment_key_problem(key, exclude_pk=exclude_pk)
            if problem:
                self.add_error("key", problem)
        kind = cleaned.get("kind") or self.instance.kind
        if kind == Segment.Kind.DYNAMIC and "definition" in self.fields:
            definition = cleaned.get("definition")
            if definition in (None, ""):
                definition = cleaned["definition"] = EVERYONE
            try:
                definition_check(definition, key=key or self.instance.key or "", exclude_pk=exclude_pk)
            except services.DefinitionProblems as exc:
                self.definition_problems = exc.problems
                self.add_error(
                    None,
                    ngettext(
                        "The conditions have %(n)d problem; it is shown beside the condition.",
                        "The conditions have %(n)d problems; each is shown beside its condition.",
                        len(exc.problems),
                    )
                    % {"n": len(exc.problems)},
                )
        elif "definition" in self.fields:
            cleaned["definition"] = None
        return cleaned


class PrebuiltFilter(admin.SimpleListFilter):
    title = "pre-built"
    parameter_name = "prebuilt"

    def lookups(self, request, model_admin):
        return [("yes", "Pre-built"), ("no", "Made here")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(prebuilt=self.value() == "yes")
        return queryset


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["name_link", "kind", "tag_list", "size", "status_badge", "computed", "owner"]
    list_filter = ["kind", "status", ("tags", admin.RelatedOnlyFieldListFilter), PrebuiltFilter]
    search_fields = ["name", "key", "description", "tags__name"]
    list_select_related = ["owner"]
    list_per_page = 50
    actions = ["recompute_selected", "copy_selected", "delete_selected_segments"]
    change_form_template = "admin/segmentation/segment/change_form.html"
    delete_confirmation_template = "admin/segmentation/segment/delete_confirmation.html"

    class Media:
        css = {"all": ["vendor/tom-select/tom-select.min.css", "admin/segmentation/segment.css"]}

    # ------------------------------------------------------------------ list
    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="Name", ordering="name")
    def name_link(self, obj):
        badge = mark_safe(' <span class="seg-badge seg-badge-prebuilt">pre-built</span>') if obj.prebuilt else ""
        url = reverse("admin:segmentation_segment_overview", args=[obj.pk])
        return format_html('<a href="{}">{}</a>{}<div class="seg-key">{}</div>', url, obj.name, badge, obj.key)

    @admin.display(description="Last computed", ordering="computed_at")
    def computed(self, obj):
        if obj.computed_at is None:
            return "–"
        return timezone.localtime(obj.computed_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Tags")
    def tag_list(self, obj):
        return format_html_join(" ", '<span class="seg-tag">{}</span>', ((t.name,) for t in obj.tags.all()))

    @admin.display(description="Size", ordering="member_count")
    def size(self, obj):
        return f"{obj.member_count:,}"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span class="seg-status seg-status-{}">{}</span>', obj.status, obj.get_status_display())

    # ------------------------------------------------------------------ form
    def get_fieldsets(self, request, obj=None):
        main = ["name", "key", "kind", "tag_names", "description"]
        if obj is not None and obj.kind == Segment.Kind.EXTERNAL:
            main.append("external_ref")
        return [(None, {"fields": main})]

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The definition is edited by the builder (rendered by the template, not a fieldset row)
        # but must still be a form field.
        fields = [
            f
            for f in flatten_fieldsets(self.get_fieldsets(request, obj))
            if f not in self.get_readonly_fields(request, obj)
        ]
        if (obj is None or obj.kind == Segment.Kind.DYNAMIC) and not (obj and obj.prebuilt):
            fields.append("definition")
        kwargs["fields"] = fields
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="Tags")
    def tag_names(self, obj):
        return ", ".join(obj.tags.values_list("name", flat=True)) or "–"

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.prebuilt:
            return ["name", "key", "kind", "description", "external_ref", "definition", "tag_names"]
        # kind is immutable (decisions 30).
        return ["kind"]

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.prebuilt:
            return False
        return super().has_delete_permission(request, obj)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        definition = form.initial.get("definition") if obj is None else obj.definition
        if form.is_bound and "definition" in form.fields:
            raw = form.data.get("definition")
            try:
                definition = json.loads(raw) if raw else definition
            except (TypeError, ValueError):
                pass
        readonly = bool(obj and (obj.prebuilt or not self.has_change_permission(request, obj)))
        kind = obj.kind if obj is not None else (form.data.get("kind") or form.initial.get("kind") or "dynamic")
        context.update(
            builder_enabled=obj is None or obj.kind == Segment.Kind.DYNAMIC,
            builder_readonly=readonly,
            builder_config={
                "definition": definition or EVERYONE,
                "problems": getattr(form, "definition_problems", []),
                "metaUrl": reverse("admin:segmentation_segment_builder_meta")
                + (f"?exclude={obj.pk}" if obj is not None else ""),
                "propertiesUrl": reverse("admin:segmentation_segment_builder_properties"),
                "previewUrl": admin_views.preview_url(),
                "segmentKey": obj.key if obj is not None else None,
                "readonly": readonly,
                "kind": kind,
            },
            segment=obj,
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The form runs the services' checks in clean(); a service can still refuse on save when
        # another user changed a segment meanwhile (a key taken, a new reference). The admin's
        # transaction rolls back and the marketer sees why instead of an error page.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.SegmentError as exc:
            self.message_user(request, admin_views.error_message(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {
            "name": data.get("name", obj.name),
            "description": data.get("description", obj.description) or "",
            "tags": data.get("tag_names", []),
        }
        if "key" in data and data.get("key"):
            fields["key"] = data["key"]
        if obj.kind == Segment.Kind.DYNAMIC or data.get("kind") == Segment.Kind.DYNAMIC:
            fields["definition"] = data.get("definition") or EVERYONE
        if "external_ref" in data:
            fields["external_ref"] = data.get("external_ref") or ""
        if change:
            segment = services.segment_update(segment=Segment.objects.get(pk=obj.pk), **fields)
        else:
            segment = services.segment_create(
                kind=data.get("kind") or Segment.Kind.DYNAMIC, owner=request.user, **fields
            )
        obj.pk = segment.pk
        obj.__dict__.update({k: v for k, v in segment.__dict__.items() if not k.startswith("_")})

    def save_related(self, request, form, formsets, change):
        # Tags are set by the service together with the rest of the segment.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def response_add(self, request, obj, post_url_continue=None):
        if obj.kind == Segment.Kind.STATIC and "_continue" not in request.POST and "_addanother" not in request.POST:
            return HttpResponseRedirect(reverse("admin:segmentation_segment_members", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    # ------------------------------------------------------------------ delete
    def delete_model(self, request, obj):
        services.segment_delete(segment=obj)

    def delete_queryset(self, request, queryset):
        for segment in queryset:
            services.segment_delete(segment=segment)

    def render_delete_form(self, request, context):
        obj = context.get("object")
        if obj is not None:
            context["dependents"] = admin_views.segment_dependents(segment=obj)
        return super().render_delete_form(request, context)

    # ------------------------------------------------------------------ actions
    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        if not self.has_delete_permission(request):
            actions.pop("delete_selected_segments", None)
        if not self.has_change_permission(request):
            actions.pop("recompute_selected", None)
        if not self.has_add_permission(request):
            actions.pop("copy_selected", None)
        return actions

    @admin.action(description="Recompute selected segments")
    def recompute_selected(self, request, queryset):
        dynamic = [s for s in queryset if s.kind == Segment.Kind.DYNAMIC]
        for segment in dynamic:
            services.segment_recompute_start(segment=segment, user=request.user)
        skipped = queryset.count() - len(dynamic)
        self.message_user(request, f"Recompute queued for {len(dynamic)} segment(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} static or external segment(s) are always current.", messages.INFO)

    @admin.action(description="Copy selected segments")
    def copy_selected(self, request, queryset):
        copies = []
        for segment in queryset:
            key, name = admin_views.copy_suggestion(segment=segment)
            copies.append(services.segment_copy(segment=segment, key=key, name=name, owner=request.user))
        self.message_user(request, "Copied: " + ", ".join(c.key for c in copies), messages.SUCCESS)

    @admin.action(description="Delete selected segments")
    def delete_selected_segments(self, request, queryset):
        prebuilt = [s for s in queryset if s.prebuilt]
        queryset = queryset.filter(prebuilt=False)
        blocked = {s.pk: admin_views.segment_dependents(segment=s) for s in queryset}
        blocked = {pk: deps for pk, deps in blocked.items() if deps}
        if request.POST.get("post") == "yes":
            deletable = [s for s in queryset if s.pk not in blocked]
            for segment in deletable:
                services.segment_delete(segment=segment)
            self.message_user(request, f"Deleted {len(deletable)} segment(s).", messages.SUCCESS)
            if blocked:
                self.message_user(
                    request,
                    f"{len(blocked)} segment(s) were kept because other segments refer to them.",
                    messages.WARNING,
                )
            return None
        rows = [{"segment": s, "dependents": blocked.get(s.pk, [])} for s in queryset.order_by("name")]
        context = {
            **self.admin_site.each_context(request),
            "title": "Delete segments?",
            "opts": self.model._meta,
            "rows": rows,
            "prebuilt": prebuilt,
            "any_deletable": any(not r["dependents"] for r in rows),
            "any_blocked": bool(blocked or prebuilt),
            "queryset": queryset,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/segmentation/segment/delete_selected_confirmation.html", context)

    # ------------------------------------------------------------------ urls
    def get_urls(self):
        view = self.admin_site.admin_view
        views = admin_views.SegmentAdminViews(self)
        custom = [
            path("builder/meta/", view(views.builder_meta), name="segmentation_segment_builder_meta"),
            path("builder/properties/", view(views.builder_properties), name="segmentation_segment_builder_properties"),
            path("customers/search/", view(views.customer_search), name="segmentation_segment_customer_search"),
            path("<int:pk>/overview/", view(views.overview), name="segmentation_segment_overview"),
            path("<int:pk>/copy/", view(views.copy), name="segmentation_segment_copy"),
            path("<int:pk>/recompute/", view(views.recompute), name="segmentation_segment_recompute"),
            path("<int:pk>/members/", view(views.members_page), name="segmentation_segment_members"),
            path("<int:pk>/members/data/", view(views.members_data), name="segmentation_segment_members_data"),
            path("<int:pk>/members/add/", view(views.members_add), name="segmentation_segment_members_add"),
            path("<int:pk>/members/remove/", view(views.members_remove), name="segmentation_segment_members_remove"),
            path("<int:pk>/members/upload/", view(views.members_upload), name="segmentation_segment_members_upload"),
        ]
        return custom + super().get_urls()


class ReadOnlyAdmin(admin.ModelAdmin):
    """History rows are written by the services only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ["segment", "finished_at", "reason", "size", "entered", "exited", "duration_ms"]
    list_filter = ["reason"]
    list_select_related = ["segment"]
    search_fields = ["segment__key", "segment__name"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "segment", "customer", "change", "reason"]
    list_filter = ["change", "reason"]
    list_select_related = ["segment", "customer"]
    search_fields = ["segment__key", "customer__external_id", "customer__email"]
    raw_id_fields = ["segment", "customer", "snapshot"]
    show_full_result_count = False


from segmentation import admin_exports  # noqa: E402,F401
