from django.contrib import admin

from scoring.models import Applicant, DatasetSchema, ImportJob, Outcome, Portfolio, RepaymentMonth


@admin.register(Portfolio)
class PortfolioAdmin(admin.ModelAdmin):
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
