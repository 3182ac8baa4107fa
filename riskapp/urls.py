from django.contrib import admin
from django.urls import include, path

from scoring import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("scoring.api.urls")),
    path("", include("scoring.urls")),  # the analyst portal
]
