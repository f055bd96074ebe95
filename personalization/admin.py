from django.contrib import admin

from .models import Placement, Variant


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    autocomplete_fields = ["segment"]
    fields = ["name", "segment", "priority", "active", "starts_at", "ends_at", "content"]


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    list_display = ["key", "name"]
    search_fields = ["key", "name"]
    inlines = [VariantInline]
