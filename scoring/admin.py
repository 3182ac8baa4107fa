"""The admin console.

Scoping: a staff user who is not a superuser sees only the rows of the portfolios
granted to them (``RestrictedAdminMixin``, the one gate of ``scoring.permissions``),
in change lists, change views (another portfolio's row answers like a missing
one), search, autocomplete, list filters (the portfolio filter offers only granted
portfolios) and foreign-key choices. Django's model permissions still decide which
admin pages a staff user may open at all.

Records of what happened (scores, repayment history, outcomes, import jobs, batch
runs and chunks, model versions, tuning studies, monitoring reports) are read-only:
they change only through the services that write them. Personal data (PII) is
shown masked unless the viewer holds ``view_portfolio_pii`` on the portfolio.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.utils.html import format_html_join
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdmin
from guardian.forms import BaseObjectPermissionsForm

from scoring.models import (
    ApiToken,
    Applicant,
    AuditCheckpoint,
    AuditEvent,
    BatchRun,
    DatasetSchema,
    ImportJob,
    LoginThrottle,
    ModelVersion,
    MonitoringReport,
    Outcome,
    PolicyVersion,
    Portfolio,
    ReasonCode,
    RepaymentMonth,
    Score,
    ScoreChunk,
    TuningStudy,
    WebhookDelivery,
    WebhookEndpoint,
)
from scoring.permissions import RestrictedAdminMixin, portfolio_field_of, restrict
from scoring.roles import PORTFOLIO_PERMS
from scoring.selectors import portfolios_visible
from scoring.services.access import portfolio_access_grant, portfolio_access_revoke
from scoring.services.errors import ServiceError
from scoring.services.schemas import SchemaError, schema_document_validate, schema_register
from scoring.services.tokens import api_token_revoke
from scoring.services.users import EscalationRefused, group_change_check, user_change_check

# --- Scoping --------------------------------------------------------------------------


class PortfolioListFilter(admin.SimpleListFilter):
    """ "By portfolio", offering only the portfolios the user may view (Django's own
    related-field filter would list every portfolio's name)."""

    title = "portfolio"
    parameter_name = "portfolio"

    def lookups(self, request, model_admin):
        return list(portfolios_visible(user=request.user).order_by("name").values_list("id", "name"))

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(**{model_admin_portfolio_field(queryset): int(value)})


def model_admin_portfolio_field(queryset: QuerySet) -> str:
    model = queryset.model
    return "run__portfolio_id" if model is ScoreChunk else portfolio_field_of(model)


# Models whose rows belong to a portfolio: a foreign key to one of them offers only
# the rows of the user's portfolios.
SCOPED_MODELS = {Applicant, BatchRun, ImportJob, ModelVersion, TuningStudy, Score}


class ScopedAdmin(RestrictedAdminMixin, admin.ModelAdmin):
    """Base of the admin of every portfolio-data model (see the module docstring)."""

    def get_list_filter(self, request):
        return [PortfolioListFilter if f == "portfolio" else f for f in super().get_list_filter(request)]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if related is Portfolio:
            kwargs["queryset"] = portfolios_visible(user=request.user)
        elif related in SCOPED_MODELS:
            kwargs["queryset"] = restrict(related._default_manager.all(), request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.related_model is Portfolio:
            kwargs["queryset"] = portfolios_visible(user=request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class ReadOnlyAdmin(ScopedAdmin):
    """Records of what happened: visible, never added, edited or deleted by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Portfolios and their grants -------------------------------------------------------


class _GrantFormMixin(BaseObjectPermissionsForm):
    """Guardian's object-permission form, limited to the portfolio permissions and
    saved through ``portfolio_access_grant``/``portfolio_access_revoke`` (the one
    place grants are made, and audited), never guardian's ``assign_perm`` directly."""

    actor = None

    def get_obj_perms_field_choices(self):
        labels = dict(Portfolio._meta.permissions)
        return [(perm, labels[perm]) for perm in PORTFOLIO_PERMS]

    def get_obj_perms_field_initial(self):
        return [perm for perm in super().get_obj_perms_field_initial() if perm in PORTFOLIO_PERMS]

    def save_obj_perms(self) -> None:
        grantee = getattr(self, "user", None) or getattr(self, "group", None)
        portfolio = self.obj
        assert isinstance(portfolio, Portfolio)
        wanted = set(self.cleaned_data[self.get_obj_perms_field_name()])
        held = set(self.get_obj_perms_field_initial())
        if held - wanted:
            portfolio_access_revoke(portfolio=portfolio, grantee=grantee, perms=sorted(held - wanted), actor=self.actor)
        if wanted - held:
            portfolio_access_grant(portfolio=portfolio, grantee=grantee, perms=sorted(wanted - held), actor=self.actor)


class UserGrantForm(_GrantFormMixin, AdminUserObjectPermissionsForm):
    pass


class GroupGrantForm(_GrantFormMixin, AdminGroupObjectPermissionsForm):
    pass


def _manages_portfolios(request) -> bool:
    return request.user.has_perm("scoring.change_portfolio")


@admin.register(Portfolio)
class PortfolioAdmin(GuardedModelAdmin):
    """Portfolios, and who is granted what on each ("Object permissions" button).

    Who may change portfolios (the administrator role) sees all of them: managing
    grants needs the portfolio in view, and grants are what decide data access. Any
    other staff user sees only the portfolios granted to them."""

    list_display = ["name", "schema", "is_active", "approve_min_score", "decline_below_score", "challenger_version",
                    "created_at"]  # fmt: skip
    list_filter = ["is_active", "schema"]
    search_fields = ["name", "description"]
    list_select_related = ["schema", "challenger_version"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "schema", "is_active"]}),
        ("Points scale", {"fields": ["base_score", "base_odds", "pdo"]}),
        ("Decisions", {"fields": ["approve_min_score", "decline_below_score", "challenger_version"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if _manages_portfolios(request) else restrict(queryset, request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "challenger_version" in form.base_fields:
            # A challenger shadow-scores beside the champion: an approved version of this portfolio.
            form.base_fields["challenger_version"].queryset = ModelVersion.objects.filter(
                portfolio=obj, status=ModelVersion.STATUS_APPROVED
            ).order_by("-version") if obj else ModelVersion.objects.none()  # fmt: skip
        return form

    def save_model(self, request, obj, form, change):
        """A change of the scale or cutoffs is a policy proposal (``policy_propose``), never
        an edit: it takes effect when a second person with the policy role approves it."""
        from scoring.services.policy import CUTOFF_FIELDS, SCALE_FIELDS, policy_propose

        policy_fields = [f for f in (*SCALE_FIELDS, *CUTOFF_FIELDS) if f in form.changed_data]
        if not change or not policy_fields:
            return super().save_model(request, obj, form, change)
        changes = {f: form.cleaned_data[f] for f in policy_fields}
        saved = Portfolio.objects.get(pk=obj.pk)
        for f in policy_fields:
            setattr(obj, f, getattr(saved, f))  # the portfolio keeps the policy in force
        super().save_model(request, obj, form, change)
        try:
            proposal = policy_propose(portfolio=obj, user=request.user, changes=changes, admin=True,
                                      comment="proposed in the admin")  # fmt: skip
        except ServiceError as error:
            self.message_user(request, f"The policy change was not proposed: {error.message}", messages.ERROR)
            return
        self.message_user(
            request,
            f"Proposed as policy v{proposal.version}: {', '.join(policy_fields)} change once a second person "
            "with the policy role approves it.",
            messages.WARNING,
        )

    def _grants_allowed(self, request) -> None:
        if not _manages_portfolios(request):
            raise PermissionDenied

    def obj_perms_manage_view(self, request, object_pk):
        self._grants_allowed(request)
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        self._grants_allowed(request)
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._grants_allowed(request)
        return super().obj_perms_manage_group_view(request, object_pk, group_id)

    def get_obj_perms_manage_user_form(self, request):
        return type("UserGrantForm", (UserGrantForm,), {"actor": request.user})

    def get_obj_perms_manage_group_form(self, request):
        return type("GroupGrantForm", (GroupGrantForm,), {"actor": request.user})


class DatasetSchemaAddForm(forms.ModelForm):
    """A new schema version from its JSON document, validated and stored by the schema service."""

    class Meta:
        model = DatasetSchema
        fields = ["definition"]
        help_texts = {"definition": "The schema document: name, version, columns (see scoring/demo/*.schema.json)."}

    def clean_definition(self):
        document = self.cleaned_data["definition"]
        try:
            definition = schema_document_validate(document)
        except SchemaError as exc:
            raise forms.ValidationError(str(exc)) from None
        existing = DatasetSchema.objects.filter(name=definition["name"], version=definition["version"]).first()
        if existing is not None:
            raise forms.ValidationError(
                f"{existing} exists already: a change to a schema is a new version, never an edit."
            )
        return definition

    def save(self, commit=True):
        self.save_m2m = lambda: None
        return schema_register(document=self.cleaned_data["definition"])


@admin.register(DatasetSchema)
class DatasetSchemaAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "column_count", "sha256", "created_at"]
    search_fields = ["name", "description"]
    date_hierarchy = "created_at"
    # A schema version, once stored, is never edited: a change is a new version.
    readonly_fields = ["name", "version", "description", "definition", "sha256", "created_at"]

    @admin.display(description="columns")
    def column_count(self, obj) -> int:
        return len(obj.definition.get("columns", []))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = DatasetSchemaAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["definition"] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)


@admin.register(ReasonCode)
class ReasonCodeAdmin(admin.ModelAdmin):
    """The wording applicants read; analysts edit it here. Codes and features are the schema's."""

    list_display = ["code", "schema", "feature", "text"]
    list_filter = ["schema"]
    search_fields = ["code", "feature", "text"]
    list_editable = ["text"]
    readonly_fields = ["schema", "feature", "code"]

    def has_add_permission(self, request):
        return False  # entries are generated from the schema (reason_codes_ensure)

    def changelist_view(self, request, extra_context=None):
        # The rows are the catalogue's entries (per feature and direction, per category)
        # of every schema a portfolio uses, made on first sight.
        from scoring.services.reason_codes import reason_codes_ensure

        for schema in DatasetSchema.objects.filter(pk__in=Portfolio.objects.values("schema_id")):
            reason_codes_ensure(schema=schema)
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        """Decisions read the texts of their portfolio's policy version, so a new wording is
        proposed as a policy change of every portfolio on this schema (approved by a second
        person with the policy role) through ``reason_text_propose``, for the same key the
        decisions look up; the schema's entry keeps the default."""
        from scoring.services.reason_codes import reason_text_propose

        for portfolio, outcome in reason_text_propose(schema=obj.schema, key=obj.feature, text=obj.text,
                                                       user=request.user):  # fmt: skip
            if isinstance(outcome, ServiceError):
                self.message_user(request, f"{portfolio}: not proposed: {outcome.message}", messages.ERROR)
            else:
                self.message_user(request, f"{portfolio}: proposed as policy v{outcome.version}.", messages.WARNING)


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyAdmin):
    """Policy versions are immutable; a proposal is approved or rejected here by a second
    person with the policy role (``scoring.services.policy``, which checks who may)."""

    list_display = ["portfolio", "version", "status", "approve_min_score", "decline_below_score", "proposed_by",
                    "proposed_at", "decided_by", "decided_at"]  # fmt: skip
    list_filter = ["status", "portfolio"]
    list_select_related = ["portfolio", "proposed_by", "decided_by"]
    actions = ["approve", "reject"]
    readonly_fields = ["impact"]

    @admin.display(description="impact on the last batch run's scores (in force → this version)")
    def impact(self, obj):
        from scoring.services.policy import policy_impact

        data = policy_impact(policy_version=obj)
        if not data["run"]:
            return "No finished batch run to measure it on."

        def line(name, key):
            old, new = data["old"], data["new"]
            fmt = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
            return (name, fmt(old and old[key]), fmt(new[key]))

        rows = [line("approval rate", "approval_rate"), line("refer rate", "refer_rate"),
                line("bad rate of the approved", "approved_bad_rate")]  # fmt: skip
        return format_html_join("", "<div>{}: {} → {}</div>", rows)

    def _decide(self, request, queryset, decide, verb: str) -> None:
        for row in queryset:
            try:
                decide(policy_version=row, user=request.user, reason=f"{verb} in the admin")
            except ServiceError as error:
                self.message_user(request, f"Policy v{row.version}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"Policy v{row.version} of {row.portfolio} {verb}.", messages.SUCCESS)

    @admin.action(description="Approve the selected proposals (four eyes)")
    def approve(self, request, queryset):
        from scoring.services.policy import policy_approve

        self._decide(request, queryset, policy_approve, "approved")

    @admin.action(description="Reject the selected proposals")
    def reject(self, request, queryset):
        from scoring.services.policy import policy_reject

        self._decide(request, queryset, policy_reject, "rejected")


# --- Applicant data ------------------------------------------------------------------


APPLICANT_FIELDS = ("portfolio", "external_id", "schema", "features", "protected_attributes", "personal_data",
                    "created_at", "updated_at")  # fmt: skip


@admin.register(Applicant)
class ApplicantAdmin(ReadOnlyAdmin):
    """Applicants change by import and are erased through the PII service
    (``manage.py erase_applicant``), never by hand here."""

    list_display = ["external_id", "portfolio", "schema", "created_at", "updated_at"]
    list_filter = ["portfolio"]
    search_fields = ["external_id__startswith"]  # a prefix search the unique (portfolio, external_id) index serves
    list_select_related = ["portfolio", "schema"]
    fields = APPLICANT_FIELDS
    readonly_fields = APPLICANT_FIELDS
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is not worth it

    def get_object(self, request, object_id, from_field=None):
        applicant = super().get_object(request, object_id, from_field)
        if applicant is not None:
            applicant._admin_request = request  # for personal_data: who is looking
        return applicant

    @admin.display(description="personal data")
    def personal_data(self, obj) -> str:
        from scoring.services.pii import pii_view

        request = getattr(obj, "_admin_request", None)
        if request is None:
            return "-"
        data = pii_view(user=request.user, applicant=obj, request=request)  # masked without view_portfolio_pii
        if not data:
            return "-"
        return format_html_join("\n", "<div>{}: {}</div>", sorted((str(k), str(v)) for k, v in data.items()))


@admin.register(RepaymentMonth)
class RepaymentMonthAdmin(ReadOnlyAdmin):
    list_display = ["applicant", "month", "balance", "amount_paid", "days_past_due"]
    list_filter = ["portfolio"]
    search_fields = ["applicant__external_id__startswith"]
    list_select_related = ["applicant"]
    show_full_result_count = False


@admin.register(Outcome)
class OutcomeAdmin(ReadOnlyAdmin):
    list_display = ["applicant", "defaulted", "observed_on"]
    list_filter = ["portfolio", "defaulted", "observed_on"]
    search_fields = ["applicant__external_id__startswith"]
    list_select_related = ["applicant"]
    show_full_result_count = False


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    """An import job and its validation report: a record of what happened."""

    list_display = ["id", "portfolio", "kind", "file_name", "status", "rows_total", "rows_invalid", "rows_created",
                    "rows_updated", "created_by", "created_at"]  # fmt: skip
    list_filter = ["status", "kind", "portfolio"]
    search_fields = ["file_name", "file_sha256"]
    list_select_related = ["portfolio", "created_by"]
    date_hierarchy = "created_at"


# --- Models and scoring ----------------------------------------------------------------


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """Read-only: metrics and artifacts are facts of training; approval and promotion
    go through the registry service (four eyes), in the portal or the API."""

    list_display = ["portfolio", "version", "kind", "status", "test_auc", "device", "training_rows", "trained_by",
                    "approved_by", "trained_at"]  # fmt: skip
    list_filter = ["status", "kind", "portfolio"]
    search_fields = ["training_data_fingerprint", "artifact_sha256"]
    list_select_related = ["portfolio", "trained_by", "approved_by"]
    date_hierarchy = "created_at"

    @admin.display(description="test AUC")
    def test_auc(self, obj) -> str:
        auc = (obj.metrics or {}).get("test", {}).get("auc")
        return "-" if auc is None else f"{auc:.3f}"


@admin.register(TuningStudy)
class TuningStudyAdmin(ReadOnlyAdmin):
    list_display = ["study_name", "portfolio", "kind", "status", "trials_done", "n_trials", "best_value",
                    "best_model_version", "created_at"]  # fmt: skip
    list_filter = ["status", "kind", "portfolio"]
    search_fields = ["study_name"]
    date_hierarchy = "created_at"


@admin.register(BatchRun)
class BatchRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "portfolio", "model_version", "challenger_version", "status", "trigger", "rows_done",
                    "rows_total", "decisions_differ", "created_at"]  # fmt: skip
    list_filter = ["status", "trigger", "portfolio"]
    list_select_related = ["portfolio", "model_version", "challenger_version"]
    date_hierarchy = "created_at"


@admin.register(ScoreChunk)
class ScoreChunkAdmin(ReadOnlyAdmin):
    portfolio_field = "run__portfolio_id"
    list_display = ["run", "index", "status", "rows", "attempts", "claimed_at", "seconds"]
    list_filter = ["status"]
    show_full_result_count = False


@admin.register(Score)
class ScoreAdmin(ReadOnlyAdmin):
    list_display = ["id", "portfolio", "applicant", "model_version", "pd", "score", "decision", "is_shadow",
                    "created_at"]  # fmt: skip
    list_filter = ["decision", "is_shadow", "portfolio"]
    search_fields = ["applicant__external_id__startswith", "input_hash__exact"]
    list_select_related = ["portfolio", "applicant", "model_version"]
    show_full_result_count = False


@admin.register(MonitoringReport)
class MonitoringReportAdmin(ReadOnlyAdmin):
    list_display = ["id", "portfolio", "model_version", "kind", "status", "rows", "alert_count", "created_at"]
    list_filter = ["kind", "status", "portfolio"]
    list_select_related = ["portfolio", "model_version"]
    date_hierarchy = "created_at"

    @admin.display(description="alerts")
    def alert_count(self, obj) -> int:
        return len(obj.alerts or [])


# --- Access ---------------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens are created with ``manage.py create_api_token`` (the key is shown
    once, only a hash is stored); here they are listed and revoked."""

    list_display = ["name", "user", "key_prefix", "narrowed", "created_at", "last_used_at", "expires_at",
                    "revoked_at"]  # fmt: skip
    list_filter = ["narrowed", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key_prefix", "user__username"]
    list_select_related = ["user"]
    readonly_fields = ["user", "name", "key_prefix", "narrowed", "portfolios", "created_at", "last_used_at",
                       "expires_at", "revoked_at"]  # fmt: skip
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # revoked, not deleted: the record of who could call the API stays

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token)
        self.message_user(request, f"{queryset.count()} token(s) revoked.", messages.SUCCESS)


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """Failed logins per username and address; deleting a row lifts its lockout."""

    list_display = ["key", "failures", "first_failure_at", "locked_until"]
    search_fields = ["key"]
    readonly_fields = ["key", "failures", "first_failure_at", "locked_until"]

    def has_add_permission(self, request):
        return False


# --- Users and groups -------------------------------------------------------------------
def _checked_form(form_class, check):
    """``form_class`` whose ``clean`` asks ``check(form, cleaned_data)`` (a service rule):
    a refusal is a form error (and an audit event, which commits: the form is only re-shown)."""

    def clean(self):
        cleaned = super(checked, self).clean()
        try:
            check(self, cleaned)
        except EscalationRefused as exc:
            raise forms.ValidationError(exc.message) from None
        return cleaned

    checked = type(form_class.__name__, (form_class,), {"clean": clean})
    return checked


def _touches_superuser(request, obj) -> bool:
    return obj is not None and obj.is_superuser and not request.user.is_superuser


class UserAdmin(DjangoUserAdmin):
    """Django's user admin under ``scoring.services.users``' rules: an administrator who
    is not a superuser manages users, roles (groups) and direct permissions, but cannot
    make or touch a superuser (its change form, password form and deletion answer 403)
    nor give a group or permission carrying rights they do not hold. Every change is
    recorded in the audit log by the users service's signal net."""

    def has_change_permission(self, request, obj=None):
        return not _touches_superuser(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _touches_superuser(request, obj) and super().has_delete_permission(request, obj)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if getattr(form, "_meta", None) is None or not {"groups", "is_superuser", "user_permissions"} & set(
            form.base_fields
        ):
            return form  # the add form (username, password) and the password form

        def check(form, cleaned):
            user_change_check(
                actor=request.user, user=form.instance,
                is_superuser=cleaned.get("is_superuser") if "is_superuser" in form.fields else None,
                groups=cleaned.get("groups") if "groups" in form.fields else None,
                user_permissions=cleaned.get("user_permissions") if "user_permissions" in form.fields else None,
            )  # fmt: skip

        return _checked_form(form, check)

    def user_change_password(self, request, id, form_url=""):
        user = self.get_object(request, unquote(id))
        if _touches_superuser(request, user):
            # The audit middleware records the 403 as request.denied; name the attempt too.
            from scoring.audit import audit_record

            audit_record(action="user.change", outcome="denied", object_type="user", object_ids=[user.pk],
                         details={"refused": ["a superuser can be changed by a superuser only"]})  # fmt: skip
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is not None and request.method == "POST":
            user = self.get_object(request, unquote(object_id))
            if _touches_superuser(request, user):
                from scoring.audit import audit_record

                audit_record(action="user.change", outcome="denied", object_type="user", object_ids=[user.pk],
                             details={"refused": ["a superuser can be changed by a superuser only"]})  # fmt: skip
                raise PermissionDenied
        return super().changeform_view(request, object_id, form_url, extra_context)


class GroupAdmin(DjangoGroupAdmin):
    """Groups (the roles, and any team): a role's permissions are declared in code, and
    nobody but a superuser gives a group permissions they do not hold."""

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        def check(form, cleaned):
            if "permissions" in form.fields:
                group_change_check(actor=request.user, group=form.instance, permissions=cleaned.get("permissions"))

        return _checked_form(form, check)


for _model, _model_admin in ((get_user_model(), UserAdmin), (Group, GroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)


# --- Audit log (read-only: the database refuses changes anyway) --------------------------
class _AuditReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes audit rows here; viewing needs ``view_auditevent``
    / ``view_auditcheckpoint`` (the auditor and administrator roles)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}  # not even "delete selected"


_AUDIT_EVENT_FIELDS = (
    "seq", "occurred_at", "actor_id", "actor_username", "action", "outcome", "portfolio_id", "object_type",
    "object_ids", "details", "request_id", "ip", "prev_hash", "hash", "seal",
)  # fmt: skip
_AUDIT_CHECKPOINT_FIELDS = ("last_event_id", "last_event_hash", "events", "key_id", "signature", "created_at")


@admin.register(AuditEvent)
class AuditEventAdmin(_AuditReadOnlyAdmin):
    list_display = ["seq", "occurred_at", "actor_username", "action", "outcome", "portfolio_id", "object_type",
                    "request_id"]  # fmt: skip
    list_filter = ["outcome", "action"]
    search_fields = ["=actor_username", "=action", "=request_id"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    fields = readonly_fields = _AUDIT_EVENT_FIELDS


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(_AuditReadOnlyAdmin):
    list_display = ["last_event_id", "events", "key_id", "created_at"]
    fields = readonly_fields = _AUDIT_CHECKPOINT_FIELDS


# --- Decision events (webhooks) -------------------------------------------------------


class WebhookEndpointForm(forms.ModelForm):
    """URL, state and description; the secret is generated (or pasted once, on creation)
    and never shown again. Saved through ``scoring.services.webhooks``."""

    url = forms.URLField(max_length=500, assume_scheme="https", help_text="http(s) address of the receiver")
    secret = forms.CharField(
        required=False, min_length=24, widget=forms.PasswordInput(render_value=False),
        help_text="Only when adding: leave empty to generate one. It is shown once, after saving, and never again.",
    )  # fmt: skip

    class Meta:
        model = WebhookEndpoint
        fields = ["portfolio", "url", "active", "description"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Where each portfolio's final decisions are POSTed. Administrators (who manage
    portfolios) see every portfolio's endpoints; the secret is shown once, when created
    or rotated. Changes go through the service, which checks the URL and audits them."""

    form = WebhookEndpointForm
    list_display = ["portfolio", "url", "active", "description", "created_by", "updated_at"]
    list_filter = ["active", "portfolio"]
    search_fields = ["url", "description"]
    list_select_related = ["portfolio", "created_by"]
    readonly_fields = ["deliveries_summary", "created_by", "created_at", "updated_at"]
    actions = ["rotate_secret"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if _manages_portfolios(request) else restrict(queryset, request.user)

    def get_fields(self, request, obj=None):
        fields = ["portfolio", "url", "active", "description"]
        return [*fields, "secret"] if obj is None else [*fields, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return ["portfolio", *self.readonly_fields] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False  # deactivated, not deleted: its delivery log stays

    @admin.display(description="deliveries")
    def deliveries_summary(self, obj) -> str:
        from django.db.models import Count

        counts = dict(obj.deliveries.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        last = obj.deliveries.exclude(last_error="").order_by("-updated_at").values_list("last_error", flat=True)
        text = ", ".join(f"{counts.get(s, 0)} {s}" for s, _ in WebhookDelivery.STATUS_CHOICES)
        return f"{text}; last error: {last.first()}" if last.first() else text

    def save_model(self, request, obj, form, change):
        from scoring.services.webhooks import webhook_endpoint_create, webhook_endpoint_update

        data = form.cleaned_data
        if change:
            saved = webhook_endpoint_update(endpoint=obj, user=request.user, url=data["url"], active=data["active"],
                                            description=data["description"])  # fmt: skip
        else:
            saved, self._new_secret = webhook_endpoint_create(
                portfolio=data["portfolio"], url=data["url"], user=request.user, active=data["active"],
                description=data["description"], secret=data.get("secret") or None,
            )  # fmt: skip
        obj.pk, obj.url, obj.active = saved.pk, saved.url, saved.active

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class Checked(form):
            def clean(self):
                from scoring.services.webhooks import webhook_url_check

                cleaned = super().clean()
                if cleaned.get("url"):
                    try:
                        cleaned["url"] = webhook_url_check(cleaned["url"])
                    except ServiceError as error:
                        self.add_error("url", error.message)
                return cleaned

        if "portfolio" in Checked.base_fields:
            Checked.base_fields["portfolio"].queryset = (
                Portfolio.objects.all() if _manages_portfolios(request) else portfolios_visible(user=request.user)
            )
        return Checked

    def response_add(self, request, obj, post_url_continue=None):
        return self._secret_page(request, [(obj, getattr(self, "_new_secret", ""))])

    def _secret_page(self, request, pairs):
        from django.template.response import TemplateResponse

        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "pairs": pairs,
                   "title": "Webhook signing secret"}  # fmt: skip
        return TemplateResponse(request, "admin/scoring/webhookendpoint/secret.html", context)

    @admin.action(description="Rotate the signing secret (the new one is shown once)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        from scoring.services.webhooks import webhook_endpoint_secret_rotate

        pairs = []
        for endpoint in queryset:
            try:
                pairs.append((endpoint, webhook_endpoint_secret_rotate(endpoint=endpoint, user=request.user)))
            except ServiceError as error:
                self.message_user(request, f"{endpoint}: {error.message}", messages.ERROR)
        return self._secret_page(request, pairs) if pairs else None


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The delivery log: what each endpoint was sent, how it answered, when it is tried
    next. Read-only; "redeliver" sends a delivered or failed one again (same event id)."""

    list_display = ["event_id", "portfolio", "endpoint", "status", "attempts", "last_status_code", "last_error",
                    "next_attempt_at", "created_at"]  # fmt: skip
    list_filter = ["status", "portfolio"]
    search_fields = ["event_id"]
    list_select_related = ["portfolio", "endpoint"]
    actions = ["redeliver"]

    @admin.action(description="Redeliver the selected deliveries (same event id)")
    def redeliver(self, request, queryset):
        from scoring.services.webhooks import webhook_delivery_redeliver

        done = 0
        for delivery in queryset:
            try:
                webhook_delivery_redeliver(delivery=delivery, user=request.user)
                done += 1
            except ServiceError as error:
                self.message_user(request, f"{delivery}: {error.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} deliver(ies) queued again.", messages.SUCCESS)


# --- Query strings of change lists -----------------------------------------------------
# Lookups whose value the database cannot take answer like any other unusable filter
# (Django's "?e=1" redirect), not a 500: a NUL character (PostgreSQL refuses it in text)
# or a date part that is no small number (``occurred_at__year=99999999999999999999999``
# overflowed while the query was built).
_DATE_PARTS = ("year", "iso_year", "month", "day", "week", "week_day", "iso_week_day", "quarter", "hour", "minute",
               "second")  # fmt: skip


def lookup_value_unusable(key: str, value: str) -> bool:
    if "\x00" in key or "\x00" in value:
        return True
    if any(part in _DATE_PARTS for part in key.split("__")[1:]):  # occurred_at__year, created_at__month__gte
        return not (value.isascii() and value.lstrip("-").isdigit() and len(value) <= 5)
    return False


def _guard_changelist(model_admin: admin.ModelAdmin) -> None:
    view = model_admin.changelist_view

    def changelist_view(request, extra_context=None):
        from django.http import HttpResponseRedirect

        if any(lookup_value_unusable(k, v) for k, values in request.GET.lists() for v in values):
            return HttpResponseRedirect(f"{request.path}?e=1")
        return view(request, extra_context)

    model_admin.changelist_view = changelist_view  # type: ignore[method-assign]


for _registered in admin.site._registry.values():
    _guard_changelist(_registered)
