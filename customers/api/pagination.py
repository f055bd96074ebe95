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
