from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from scoring.models import (
    Applicant,
    BatchRun,
    DatasetSchema,
    ImportJob,
    ModelVersion,
    Outcome,
    Portfolio,
    ReasonCode,
    RepaymentMonth,
    Score,
    ScoreChunk,
    TuningStudy,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened: visible, never edited or deleted by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Portfolio)
class PortfolioAdmin(GuardedModelAdmin):
    """Object permissions ("Object permissions" button) are how portfolios are granted."""

    list_display = ["name", "schema", "is_active", "base_score", "base_odds", "pdo", "created_at"]
    list_filter = ["is_active", "schema"]
    search_fields = ["name", "description"]


@admin.register(DatasetSchema)
class DatasetSchemaAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "sha256", "created_at"]
    search_fields = ["name"]
    # A schema version, once stored, is never edited: a change is a new version.
    readonly_fields = ["name", "version", "description", "definition", "sha256", "created_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)


@admin.register(Applicant)
class ApplicantAdmin(admin.ModelAdmin):
    list_display = ["external_id", "portfolio", "schema", "updated_at"]
    list_filter = ["portfolio"]
    search_fields = ["external_id"]
    list_select_related = ["portfolio", "schema"]
    readonly_fields = [
        "portfolio",
        "external_id",
        "schema",
        "features",
        "protected_attributes",
        "created_at",
        "updated_at",
    ]
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is not worth it


@admin.register(RepaymentMonth)
class RepaymentMonthAdmin(admin.ModelAdmin):
    list_display = ["applicant", "month", "balance", "amount_paid", "days_past_due"]
    list_filter = ["portfolio"]
    raw_id_fields = ["applicant"]
    show_full_result_count = False


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    list_display = ["applicant", "defaulted", "observed_on"]
    list_filter = ["portfolio", "defaulted"]
    raw_id_fields = ["applicant"]
    show_full_result_count = False


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "portfolio",
        "kind",
        "file_name",
        "status",
        "rows_total",
        "rows_invalid",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "kind", "portfolio"]
    search_fields = ["file_name"]
    # An import job is a record of what happened: read-only.
    readonly_fields = [f.name for f in ImportJob._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "portfolio",
        "version",
        "kind",
        "status",
        "device",
        "training_rows",
        "trained_by",
        "approved_by",
        "trained_at",
    ]
    list_filter = ["status", "kind", "portfolio"]
    search_fields = ["training_data_fingerprint", "artifact_sha256"]


@admin.register(TuningStudy)
class TuningStudyAdmin(ReadOnlyAdmin):
    list_display = ["study_name", "portfolio", "kind", "status", "trials_done", "n_trials", "best_value"]
    list_filter = ["status", "kind"]


@admin.register(ReasonCode)
class ReasonCodeAdmin(admin.ModelAdmin):
    """The wording applicants read; analysts edit it here."""

    list_display = ["code", "schema", "feature", "text"]
    list_filter = ["schema"]
    search_fields = ["code", "feature", "text"]
    list_editable = ["text"]
    readonly_fields = ["schema", "feature", "code"]


@admin.register(BatchRun)
class BatchRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "portfolio",
        "model_version",
        "status",
        "trigger",
        "rows_done",
        "rows_total",
        "decisions_differ",
        "created_at",
    ]
    list_filter = ["status", "trigger", "portfolio"]


@admin.register(ScoreChunk)
class ScoreChunkAdmin(ReadOnlyAdmin):
    list_display = ["run", "index", "status", "rows", "attempts", "seconds"]
    list_filter = ["status"]
    show_full_result_count = False


@admin.register(Score)
class ScoreAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "portfolio",
        "applicant",
        "model_version",
        "pd",
        "score",
        "decision",
        "is_shadow",
        "created_at",
    ]
    list_filter = ["decision", "is_shadow", "portfolio"]
    raw_id_fields = ["applicant", "run"]
    show_full_result_count = False
