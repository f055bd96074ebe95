from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """Page-number pages with `count`; `page_size` clamped to 1,000 (decisions 32)."""

    page_size_query_param = "page_size"
    max_page_size = 1000


class CursorPagination(pagination.CursorPagination):
    """Cursor pages for events, ledger entries and members (no total count)."""

    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"


class EventCursorPagination(CursorPagination):
    """Events newest first; ties on the timestamp fall back to the id."""

    ordering = ("-timestamp", "-id")


class LedgerCursorPagination(CursorPagination):
    """A customer's entered/exited history, newest first, with current memberships alongside."""

    ordering = ("-at", "-id")

    def paginate_queryset(self, queryset, request, view=None):
        self.memberships = view.get_memberships() if view is not None else []
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data = {"memberships": self.memberships, **response.data}
        return response

    def get_paginated_response_schema(self, schema):
        result = super().get_paginated_response_schema(schema)
        result["properties"] = {
            "memberships": {
                "type": "array",
                "description": "Current memberships.",
                "items": {
                    "type": "object",
                    "properties": {
                        "segment": {"type": "string"},
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "entered_at": {"type": "string", "format": "date-time"},
                    },
                },
            },
            **result["properties"],
        }
        result["required"] = ["memberships", "results"]
        return result
