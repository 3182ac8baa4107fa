from django.contrib import admin
from django.urls import include, path

from scoring import metrics, probes

urlpatterns = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("scoring.api.urls")),
    path("", include("scoring.urls")),  # the analyst portal
]
