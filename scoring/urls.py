"""URLs of the analyst portal (namespace ``portal``), mounted at the site root."""

from django.contrib.auth import views as auth_views
from django.urls import path

from scoring import job_views, views, views_review, views_validation

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    # Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says.
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("applicants/", views.applicant_list, name="applicant_list"),
    path("applicants/<int:applicant_id>/", views.applicant_detail, name="applicant_detail"),
    path("applicants/<int:applicant_id>/whatif/", views.applicant_whatif, name="applicant_whatif"),
    path("applicants/<int:applicant_id>/score/", views.applicant_score, name="applicant_score"),
    path("score/", views.score_new, name="score_new"),
    path("scores/<int:score_id>/", views.score_detail, name="score_detail"),
    path("scores/<int:score_id>/notice/", views_review.score_notice, name="score_notice"),
    path("reviews/", views_review.review_queue, name="review_queue"),
    path("reviews/<int:score_id>/", views_review.review_case, name="review_case"),
    path("reviews/<int:score_id>/take/", views_review.review_case_take, name="review_case_take"),
    path("reviews/<int:score_id>/release/", views_review.review_case_release, name="review_case_release"),
    path("reviews/<int:score_id>/decide/", views_review.review_case_decide, name="review_case_decide"),
    path("imports/", views.import_list, name="import_list"),
    path("imports/<int:job_id>/", views.import_detail, name="import_detail"),
    path("imports/<int:job_id>/status/", views.import_status, name="import_status"),
    path("imports/<int:job_id>/report.csv", views.import_report, name="import_report"),
    path("imports/infer-schema/", views.schema_infer, name="schema_infer"),
    path("models/", views.model_list, name="model_list"),
    path("models/train/", views.model_train, name="model_train"),
    path("models/tune/", views.model_tune, name="model_tune"),
    path("models/compare/", views.model_compare, name="model_compare"),
    path("models/<int:version_id>/", views.model_detail, name="model_detail"),
    path("models/<int:version_id>/progress/", views.model_progress, name="model_progress"),
    path("models/<int:version_id>/approve/", views.model_approve, name="model_approve"),
    path("models/<int:version_id>/promote/", views.model_promote, name="model_promote"),
    path("models/<int:version_id>/reject/", views_validation.model_reject, name="model_reject"),
    path("models/<int:version_id>/notes/", views_validation.model_note, name="model_note"),
    path("models/<int:version_id>/restore/", views_validation.model_restore, name="model_restore"),
    path("portfolios/<int:portfolio_id>/restore-champion/", views_validation.champion_restore, name="champion_restore"),
    path("runs/", views.run_list, name="run_list"),
    path("runs/start/", views.run_start, name="run_start"),
    path("runs/progress/", views.run_progress, name="run_progress"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run_resume"),
    path("runs/<int:run_id>/export.<str:file_format>", views.run_export, name="run_export"),
    path("jobs/<str:kind>/<int:pk>/<str:action>/", job_views.job_action, name="job_action"),
    path("audit/", views.audit_list, name="audit_list"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
]
