"""The API's documentation pages (Swagger UI, ReDoc) under the Content-Security-Policy.

Their assets come from drf-spectacular-sidecar's static files (offline, our own
origin). Swagger UI's start-up script is served as a file of its own (the "split"
view), so no page runs inline script; both UIs inject styles and ReDoc runs its
search in a blob worker, so these two pages, and only they, allow inline styles
and blob workers.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.urls import path
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

DOCS_CSP = {"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]}


@method_decorator(csp_update(DOCS_CSP), name="dispatch")
class SwaggerView(SpectacularSwaggerSplitView):
    pass


@method_decorator(csp_update(DOCS_CSP), name="dispatch")
class RedocView(SpectacularRedocView):
    # drf-spectacular's page, minus the web fonts it fetches from a CDN.
    template_name = "scoring/api/redoc.html"


def docs_urlpatterns(schema_url_name: str = "schema") -> list:
    return [
        path("docs/", SwaggerView.as_view(url_name=schema_url_name), name="swagger-ui"),
        path("redoc/", RedocView.as_view(url_name=schema_url_name), name="redoc"),
    ]
