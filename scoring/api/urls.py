from django.urls import URLPattern, include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from scoring.api import fast, views
from scoring.api.audit import AuditEventViewSet
from scoring.api.docs import docs_urlpatterns
from scoring.api.errors import not_found_view
from scoring.api.reviews import ReviewQueueViewSet
from scoring.api.webhooks import WebhookDeliveryViewSet

router = DefaultRouter()
router.register("portfolios", views.PortfolioViewSet, basename="portfolio")
router.register("schemas", views.DatasetSchemaViewSet, basename="schema")
router.register("applicants", views.ApplicantViewSet, basename="applicant")
router.register("scores", views.ScoreViewSet, basename="score")
router.register("models", views.ModelVersionViewSet, basename="modelversion")
router.register("tuning-studies", views.TuningStudyViewSet, basename="tuningstudy")
router.register("batch-runs", views.BatchRunViewSet, basename="batchrun")
router.register("imports", views.ImportJobViewSet, basename="importjob")
router.register("audit-events", AuditEventViewSet, basename="auditevent")
router.register("review-queue", ReviewQueueViewSet, basename="reviewcase")
router.register("webhook-deliveries", WebhookDeliveryViewSet, basename="webhookdelivery")

# Real-time scoring answers its common case in a lean view in front of the DRF
# action, which stays the endpoint's definition (schema, errors) and answers the rest.
# It keeps the action's URL name: metrics label requests by it and dashboards query it.
_drf_score = next(p.callback for p in router.urls if isinstance(p, URLPattern) and p.name == "portfolio-score")

urlpatterns = [
    path("portfolios/<int:pk>/score/", fast.score_view(_drf_score, views.PortfolioViewSet), name="portfolio-score"),
    path("", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    *docs_urlpatterns("schema"),  # Swagger UI and ReDoc, served locally under the CSP
    # Last: any other path under /api/v1/ is a 404 in the API's error format.
    re_path(r"^.*$", not_found_view),
]
