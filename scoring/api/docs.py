"""The API's documentation pages (Swagger UI, ReDoc) under the Content-Security-Policy.

Their assets come from drf-spectacular-sidecar's static files (offline, our own
origin). Swagger UI's start-up script is served as a file of its own (the "split"
view), so no page runs inline script; both UIs inject styles and ReDoc runs its
search in a blob worker, so these two pages, and only they, allow inline styles
and blob workers.

ReDoc's bundle draws a logo from Redocly's CDN in its sidebar ("API docs by
Redocly"), which the CSP blocks (a console error) and which would be a call to a
third party: the bundle is served through ``redoc_bundle`` with that one address
replaced by an empty image. Nothing else on either page names another host
(tests/scoring/api/test_docs_offline.py, and the browser test watching requests).
"""

from __future__ import annotations

import functools

from csp.decorators import csp_update
from django.contrib.staticfiles import finders
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

DOCS_CSP = {"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]}
REDOC_BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE = "data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E"


@method_decorator(csp_update(DOCS_CSP), name="dispatch")
class SwaggerView(SpectacularSwaggerSplitView):
    pass


@method_decorator(csp_update(DOCS_CSP), name="dispatch")
class RedocView(SpectacularRedocView):
    # drf-spectacular's page, minus the web fonts it fetches from a CDN, and with the
    # bundle whose CDN logo is removed.
    template_name = "scoring/api/redoc.html"

    @staticmethod
    def _redoc_standalone():
        return reverse("redoc-bundle")


@functools.cache
def _redoc_bundle_bytes() -> bytes:
    found = finders.find(REDOC_BUNDLE)
    if not found:
        raise Http404("ReDoc's bundle is not installed")
    with open(found, encoding="utf-8") as bundle:
        return bundle.read().replace(REDOC_CDN_LOGO, EMPTY_IMAGE).encode()


@require_GET
def redoc_bundle(request):
    """drf-spectacular-sidecar's ReDoc bundle without its one CDN address (read once per process)."""
    response = HttpResponse(_redoc_bundle_bytes(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response


def docs_urlpatterns(schema_url_name: str = "schema") -> list:
    return [
        path("docs/", SwaggerView.as_view(url_name=schema_url_name), name="swagger-ui"),
        path("redoc/", RedocView.as_view(url_name=schema_url_name), name="redoc"),
        path("redoc/redoc.standalone.js", redoc_bundle, name="redoc-bundle"),
    ]
