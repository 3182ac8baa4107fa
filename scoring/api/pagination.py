"""Page-numbered lists with a page size the client may choose, up to a cap."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class ApiPagination(PageNumberPagination):
    """``?page=N&page_size=M`` (default 50); a ``page_size`` above 500 is cut to 500,
    so one request can never ask for a whole portfolio."""

    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    page_size_query_description = f"Results per page (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE})."
    max_page_size = MAX_PAGE_SIZE
