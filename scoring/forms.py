"""Forms of the analyst portal. Choices of portfolios always come from
``portfolios_visible`` for the permission the action needs, so a form can never
offer (or accept) a portfolio the user may not act on."""

from __future__ import annotations

from django import forms
from django.conf import settings

from models.coltypes import column_type
from scoring.models import DatasetSchema, ImportJob, ModelVersion, Portfolio
from scoring.selectors import APPLICANT_SORTS, portfolios_visible
from scoring.services import display
from scoring.services.ingestion import KINDS

PAGE_SIZES = (25, 50, 100)  # the applicant list never pages more rows than the largest


class PortfolioField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.name


def _portfolio_field(user, perm: str, **kwargs) -> PortfolioField:
    return PortfolioField(queryset=portfolios_visible(user=user, perm=perm).order_by("name"), **kwargs)


class PortfolioChoiceForm(forms.Form):
    """The portfolio a page shows (GET)."""

    portfolio = forms.ModelChoiceField(queryset=Portfolio.objects.none(), empty_label=None)

    def __init__(self, *args, user, perm: str = "view_portfolio_data", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["portfolio"] = _portfolio_field(user, perm, empty_label=None)


class ApplicantFilterForm(forms.Form):
    DECISIONS = [
        ("", "Any"),
        ("approve", "Approve"),
        ("refer", "Refer"),
        ("decline", "Decline"),
        ("unscored", "Not scored"),
    ]
    SORTS = [
        ("external_id", "External id (A to Z)"),
        ("-external_id", "External id (Z to A)"),
        ("-score", "Score (highest first)"),
        ("score", "Score (lowest first)"),
        ("newest", "Newest first"),
    ]

    search = forms.CharField(label="External id starts with", required=False, max_length=100)
    decision = forms.ChoiceField(choices=DECISIONS, required=False)
    score_min = forms.FloatField(label="Score from", required=False)
    score_max = forms.FloatField(label="Score to", required=False)
    sort = forms.ChoiceField(choices=SORTS, required=False)
    page_size = forms.TypedChoiceField(
        label="Rows per page", choices=[(n, n) for n in PAGE_SIZES], coerce=int, required=False, empty_value=None
    )

    def clean_sort(self) -> str:
        sort = self.cleaned_data.get("sort") or "external_id"
        assert sort in APPLICANT_SORTS  # the choices are a subset of the selector's sorts
        return sort


class ImportForm(forms.Form):
    portfolio = forms.ModelChoiceField(queryset=Portfolio.objects.none())
    kind = forms.ChoiceField(choices=[(k, dict(ImportJob.KIND_CHOICES)[k]) for k in KINDS], label="File contains")
    file = forms.FileField(help_text="CSV (.csv, .csv.gz) or Parquet; validated completely before anything is written.")
    valid_only = forms.BooleanField(
        required=False, label="Import the valid rows even if some rows are invalid (they are listed in the report)"
    )
    encoding = forms.CharField(initial="utf-8", max_length=40, help_text="Text encoding of a CSV file")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["portfolio"] = _portfolio_field(user, "import_portfolio")


class SchemaInferForm(forms.Form):
    """A sample file to propose a schema from (nothing is imported)."""

    portfolio = forms.ModelChoiceField(queryset=Portfolio.objects.none(), help_text="The portfolio it is meant for")
    file = forms.FileField(help_text="CSV (.csv, .csv.gz) or Parquet; a sample is read, the copy deleted at once.")
    name = forms.CharField(required=False, max_length=200, help_text="Schema name (default: from the file name)")
    encoding = forms.CharField(initial="utf-8", max_length=40)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["portfolio"] = _portfolio_field(user, "import_portfolio")


class TrainForm(forms.Form):
    portfolio = forms.ModelChoiceField(queryset=Portfolio.objects.none())
    kind = forms.ChoiceField(choices=ModelVersion.KIND_CHOICES, label="Model")
    also = forms.MultipleChoiceField(
        choices=ModelVersion.KIND_CHOICES, required=False, label="Also train, on the same split",
        help_text="Other families to train with it: the model page compares them side by side.",
    )  # fmt: skip
    seed = forms.IntegerField(initial=0, min_value=0, max_value=2**31 - 1)
    max_epochs = forms.IntegerField(
        label="At most epochs", required=False, min_value=1, max_value=500, help_text="Blank: the model's default."
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["portfolio"] = _portfolio_field(user, "train_portfolio")


class TuneForm(forms.Form):
    portfolio = forms.ModelChoiceField(queryset=Portfolio.objects.none())
    kind = forms.ChoiceField(choices=ModelVersion.KIND_CHOICES, label="Model")
    n_trials = forms.IntegerField(label="Trials", initial=10, min_value=1, max_value=settings.TUNE_MAX_TRIALS)
    seed = forms.IntegerField(initial=0, min_value=0, max_value=2**31 - 1)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["portfolio"] = _portfolio_field(user, "train_portfolio")


class BatchRunForm(forms.Form):
    portfolio = forms.ModelChoiceField(queryset=Portfolio.objects.none())
    chunk_size = forms.IntegerField(initial=5000, min_value=100, max_value=100_000, label="Applicants per chunk")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["portfolio"] = _portfolio_field(user, "score_portfolio")


class AuditFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=50)
    actor = forms.CharField(label="User name", required=False, max_length=150)
    # By name: the log is read across portfolios (scoring.selectors.audit_may_read).
    portfolio = PortfolioField(queryset=Portfolio.objects.order_by("name"), required=False, empty_label="Any")
    outcome = forms.ChoiceField(
        choices=[("", "Any"), ("success", "Success"), ("denied", "Denied"), ("failure", "Failure")], required=False
    )
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))


def application_form_class(schema: DatasetSchema) -> type[forms.Form]:
    """A new application's form: the schema's model features, blank to start with; a
    category list offers a "choose" entry so nothing is picked for the applicant."""
    form_class = whatif_form_class(schema)
    for field in form_class.base_fields.values():
        if isinstance(field, forms.ChoiceField) and field.required:
            field.choices = [("", "(choose)"), *field.choices]  # type: ignore[misc]
    return form_class


def whatif_form_class(schema: DatasetSchema) -> type[forms.Form]:
    """A form of the schema's model features (numeric within their declared range,
    categories from their declared list): the what-if panel's inputs."""
    fields: dict[str, forms.Field] = {}
    for column in display.feature_columns(schema):
        name = column["name"]
        label = display.column_label(column)
        required = not column.get("nullable", False)
        kind = column_type(column).form
        if kind == "choice":
            choices = [(c, c) for c in column.get("categories", [])]
            if not required:
                choices = [("", "(missing)"), *choices]
            fields[name] = forms.ChoiceField(label=label, choices=choices, required=required)
        elif kind == "date":
            fields[name] = forms.DateField(
                label=label, required=required, widget=forms.DateInput(attrs={"type": "date"})
            )
        else:
            low, high = column.get("min"), column.get("max")
            field_class = forms.IntegerField if kind == "integer" else forms.FloatField
            fields[name] = field_class(label=label, required=required, min_value=low, max_value=high)
    return type("WhatIfForm", (forms.Form,), fields)


class ReviewDecisionForm(forms.Form):
    """An underwriter's final decision of a referred case (the rules: scoring.services.reviews)."""

    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("decline", "Decline")], widget=forms.RadioSelect)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=1000,
        help_text="Required: why you decide this way. Kept with the decision and in the audit log.",
    )
