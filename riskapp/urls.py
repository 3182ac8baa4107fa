from django.contrib import admin
from django.urls import include, path, re_path

from scoring import metrics, probes
from scoring.api.errors import not_found_view

urlpatterns = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("scoring.api.urls")),
    re_path(r"^api(/.*)?$", not_found_view),  # /api/v2/..., /api/: the API's JSON 404 too
    path("", include("scoring.urls")),  # the analyst portal
]
