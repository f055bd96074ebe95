"""Small display helpers shared by the customers admin modules."""

import json

from django.utils import timezone
from django.utils.html import format_html


def when(value) -> str:
    """A datetime in TIME_ZONE with the zone shown (decisions 36); "—" when unknown."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def pretty_json(value):
    """Indented JSON in a <pre> block for read-only JSON fields."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre class="tessera-json">{}</pre>', text)


class ReadOnlyAdminMixin:
    """Admins that show records written elsewhere (events, jobs, audit entries)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
