"""Query-string filters of the API's lists (django-filter).

Filters run on querysets the permission gate has already restricted. Ids of
related objects (portfolio, applicant, run, model version) are plain number
filters, not model choices: a model choice validates the id against the whole
table and would answer "not a valid choice" for a missing id but filter quietly
for another portfolio's, telling the two apart.
"""

from __future__ import annotations

from datetime import UTC

import django_filters as filters
from django import forms
from django.db.models import OuterRef, QuerySet, Subquery
from django_filters.fields import IsoDateTimeField

from models.scaling import APPROVE, DECLINE, REFER
from scoring.models import Applicant, BatchRun, ImportJob, ModelVersion, Score, TuningStudy

DECISION_CHOICES = [(APPROVE, "Approve"), (REFER, "Refer"), (DECLINE, "Decline")]


class IdFilter(filters.NumberFilter):
    """The id of a related object: a whole number the database can hold. Out of
    range is a 400, not an overflow in the database driver (a 500)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        kwargs.setdefault("decimal_places", 0)
        super().__init__(*args, **kwargs)


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time turned into UTC here, so the database never sees the
    client's offset: PostgreSQL refuses offsets beyond 15:59 (``+16:00`` was a 500),
    and a date at the edge of the calendar can overflow once moved to UTC (a 400)."""

    def to_python(self, value):
        # Django's DateTimeField parses ISO 8601 itself (not through strptime): convert after it.
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("The date-time is out of range once moved to UTC.") from None


class UtcIsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class _CreatedRange(filters.FilterSet):
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="created at or after (ISO 8601 date or date-time)"
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="created before (ISO 8601 date or date-time)"
    )


def _with_latest_score(queryset: QuerySet[Applicant]) -> QuerySet[Applicant]:
    """Applicants annotated with their latest decision and points. Shadow (challenger)
    scores are not decisions. Each subquery is one probe of the (applicant, -created_at)
    index; annotated once however many filters use it."""
    if "latest_decision" in queryset.query.annotations:
        return queryset
    latest = Score.objects.filter(applicant=OuterRef("pk"), is_shadow=False).order_by("-created_at", "-id")
    return queryset.annotate(
        latest_decision=Subquery(latest.values("decision")[:1]),
        latest_score=Subquery(latest.values("score")[:1]),
    )


class ApplicantFilter(_CreatedRange):
    portfolio = IdFilter(field_name="portfolio_id")
    external_id = filters.CharFilter(help_text="the lender's id, exactly")
    external_id_prefix = filters.CharFilter(
        field_name="external_id", lookup_expr="startswith", help_text="the lender's id starts with this"
    )
    decision = filters.ChoiceFilter(
        choices=DECISION_CHOICES, method="filter_latest_decision", help_text="decision of the latest score"
    )
    score_min = filters.NumberFilter(method="filter_latest_score", help_text="latest score's points at least this")
    score_max = filters.NumberFilter(method="filter_latest_score", help_text="latest score's points at most this")

    class Meta:
        model = Applicant
        fields = ["portfolio", "external_id"]

    def filter_latest_decision(self, queryset, name, value):
        return _with_latest_score(queryset).filter(latest_decision=value)

    def filter_latest_score(self, queryset, name, value):
        lookup = "gte" if name == "score_min" else "lte"
        return _with_latest_score(queryset).filter(**{f"latest_score__{lookup}": value})


class ScoreFilter(_CreatedRange):
    portfolio = IdFilter(field_name="portfolio_id")
    applicant = IdFilter(field_name="applicant_id")
    run = IdFilter(field_name="run_id", help_text="scores of one batch run")
    model_version = IdFilter(field_name="model_version_id")
    decision = filters.ChoiceFilter(choices=DECISION_CHOICES)
    is_shadow = filters.BooleanFilter(help_text="true: a challenger's shadow scores only")
    score_min = filters.NumberFilter(field_name="score", lookup_expr="gte", help_text="points at least this")
    score_max = filters.NumberFilter(field_name="score", lookup_expr="lte", help_text="points at most this")

    class Meta:
        model = Score
        fields = ["portfolio", "applicant", "run", "model_version", "decision", "is_shadow"]


class ModelVersionFilter(_CreatedRange):
    portfolio = IdFilter(field_name="portfolio_id")
    status = filters.ChoiceFilter(choices=ModelVersion.STATUS_CHOICES)
    kind = filters.ChoiceFilter(choices=ModelVersion.KIND_CHOICES)
    training_group = filters.UUIDFilter(help_text="the versions one training request queued")

    class Meta:
        model = ModelVersion
        fields = ["portfolio", "status", "kind", "training_group"]


class TuningStudyFilter(_CreatedRange):
    portfolio = IdFilter(field_name="portfolio_id")
    status = filters.ChoiceFilter(choices=TuningStudy.STATUS_CHOICES)
    kind = filters.ChoiceFilter(choices=ModelVersion.KIND_CHOICES)

    class Meta:
        model = TuningStudy
        fields = ["portfolio", "status", "kind"]


class BatchRunFilter(_CreatedRange):
    portfolio = IdFilter(field_name="portfolio_id")
    model_version = IdFilter(field_name="model_version_id")
    status = filters.ChoiceFilter(choices=BatchRun.STATUS_CHOICES)
    trigger = filters.ChoiceFilter(choices=BatchRun.TRIGGER_CHOICES)

    class Meta:
        model = BatchRun
        fields = ["portfolio", "model_version", "status", "trigger"]


class ImportJobFilter(_CreatedRange):
    portfolio = IdFilter(field_name="portfolio_id")
    status = filters.ChoiceFilter(choices=ImportJob.STATUS_CHOICES)
    kind = filters.ChoiceFilter(choices=ImportJob.KIND_CHOICES)

    class Meta:
        model = ImportJob
        fields = ["portfolio", "status", "kind"]
