"""API representations. Thin: validation of shapes here, rules in services."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from scoring.models import (
    Applicant,
    BatchRun,
    DatasetSchema,
    ImportJob,
    ModelVersion,
    Portfolio,
    Score,
    TuningStudy,
    ValidationNote,
)
from scoring.services.errors import public_error_text
from scoring.services.registry import REASON_MAX
from scoring.services.validation import NOTE_MAX


class PortfolioSerializer(serializers.ModelSerializer):
    schema: serializers.StringRelatedField = serializers.StringRelatedField()

    class Meta:
        model = Portfolio
        fields = ["id", "name", "description", "schema", "is_active", "base_score", "base_odds", "pdo",
                  "approve_min_score", "decline_below_score", "created_at"]  # fmt: skip


class DatasetSchemaSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetSchema
        fields = ["id", "name", "version", "description", "definition", "sha256", "created_at"]


class ApplicantSerializer(serializers.ModelSerializer):
    """Model inputs only: protected attributes and personal data (PII) are never in the API's applicant."""

    class Meta:
        model = Applicant
        fields = ["id", "portfolio", "external_id", "schema", "features", "created_at", "updated_at"]


class ReasonSerializer(serializers.Serializer):
    feature = serializers.CharField(help_text="schema column, or history.<channel>:<window> for temporal reasons")
    code = serializers.CharField(help_text="reason code from the catalogue, e.g. R004")
    text = serializers.CharField(help_text="the sentence an applicant reads")
    value = serializers.JSONField(allow_null=True, help_text="the applicant's own value behind the reason")
    log_odds = serializers.FloatField(help_text="contribution to the log-odds of default (positive raises risk)")
    points = serializers.FloatField(help_text="the same contribution in score points (negative lowers the score)")


class ScoreSerializer(serializers.ModelSerializer):
    reasons = ReasonSerializer(many=True)
    model_version = serializers.IntegerField(source="model_version_id", help_text="the model version's id")
    model_version_number = serializers.IntegerField(
        source="model_version.version",
        read_only=True,
        help_text="its number within the portfolio (v2), as the portal shows",
    )

    class Meta:
        model = Score
        fields = ["id", "portfolio", "applicant", "run", "model_version", "model_version_number", "policy_version",
                  "is_shadow", "pd", "score", "decision", "base_log_odds", "reasons", "input_hash", "created_at"]  # fmt: skip


class ScoreDetailSerializer(ScoreSerializer):
    class Meta(ScoreSerializer.Meta):
        fields = [*ScoreSerializer.Meta.fields, "contributions", "input_features"]


class ContributionSerializer(serializers.Serializer):
    group = serializers.CharField(help_text="input group: a schema column, or history.<channel>:<window>")
    value = serializers.JSONField(
        allow_null=True, help_text="the applicant's value (a history fact for history groups)"
    )
    log_odds = serializers.FloatField(help_text="contribution to the calibrated log-odds of default")
    points = serializers.FloatField(help_text="the contribution in points on the portfolio's current scale")


class ScaleSerializer(serializers.Serializer):
    base_score = serializers.FloatField()
    base_odds = serializers.FloatField()
    pdo = serializers.FloatField()


class ScoreExplanationSerializer(serializers.Serializer):
    """The stored explanation of one decision (``scoring.services.explanations``)."""

    score_id = serializers.IntegerField()
    applicant = serializers.IntegerField(allow_null=True, help_text="null for a new applicant scored unsaved")
    model_version = serializers.IntegerField()
    pd = serializers.FloatField()
    score = serializers.FloatField()
    decision = serializers.CharField()
    base_log_odds = serializers.FloatField(help_text="the explainer's base value: expected calibrated log-odds")
    base_points = serializers.FloatField(help_text="the base value in points")
    log_odds = serializers.FloatField(help_text="base_log_odds + the sum of contributions: log(pd / (1 - pd))")
    scale = ScaleSerializer(help_text="the points scale the points were computed on")
    policy_version = serializers.JSONField(
        help_text="{id, version, note}: the policy version the decision was made and is explained under"
    )
    contributions = ContributionSerializer(many=True, help_text="every input group, largest risk first")
    reasons = ReasonSerializer(many=True, help_text="the top reasons given with the decision")
    boundary = serializers.JSONField(
        help_text="{cutoff, points_short, costs, principal}: each group's cost in points against applicants at the "
        "approve cutoff (adding up to cutoff - score) and the principal reasons, one per cause"
    )
    created_at = serializers.DateTimeField()


class RecourseChangeSerializer(serializers.Serializer):
    feature = serializers.CharField(help_text="the schema column changed (an actionable feature)")
    label = serializers.CharField(help_text="the column's label")  # type: ignore[assignment]  # a field, not Field.label
    before = serializers.JSONField(allow_null=True, help_text="the value the score was decided on")
    after = serializers.JSONField(help_text="the suggested value")
    before_text = serializers.CharField()
    after_text = serializers.CharField()
    cost = serializers.FloatField(help_text="the change's size in training spreads (1 for a switch of category)")


class RecourseSuggestionSerializer(serializers.Serializer):
    changes = RecourseChangeSerializer(many=True)
    cost = serializers.FloatField(help_text="the changes' costs plus 0.5 per changed feature (fewer changes first)")
    pd = serializers.FloatField(help_text="PD of the changed application, scored by the score's model version")
    score = serializers.FloatField(help_text="its points under the score's policy version")
    decision = serializers.CharField(help_text="its decision under that policy (cutoffs and strategy rules)")


class ScoreRecourseSerializer(serializers.Serializer):
    """What would it take: the smallest changes that reach approve (``scoring.services.recourse``)."""

    score = serializers.IntegerField()
    applicant = serializers.IntegerField(allow_null=True)
    model_version = serializers.IntegerField(
        help_text="the model version of the score (the one that scores the changes)"
    )
    policy_version = serializers.IntegerField(
        allow_null=True, help_text="the policy version the score was decided under, which decides the changes"
    )
    policy_note = serializers.CharField()
    decision = serializers.CharField(help_text="the score's own decision")
    points = serializers.FloatField(help_text="the score's own points")
    target = serializers.CharField(help_text="the decision the changes reach")
    feasible = serializers.BooleanField(help_text="false: no change within the features' bounds reaches the target")
    message = serializers.CharField()
    suggestions = RecourseSuggestionSerializer(many=True, help_text="cheapest first, each confirmed by scoring it")
    immutable = serializers.ListField(child=serializers.CharField(), help_text="model features never changed")
    immutable_labels = serializers.ListField(child=serializers.CharField())
    evaluated = serializers.IntegerField(help_text="changed applications scored by the search")


class ScoreRequestSerializer(serializers.Serializer):
    applicant_id = serializers.IntegerField(required=False, help_text="an existing applicant of the portfolio")
    external_id = serializers.CharField(required=False, help_text="or the lender's id of an existing applicant")
    applicant = serializers.DictField(required=False, help_text="or a new applicant's data, by schema column")
    history = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="new applicant's months, oldest first (CNN models)"
    )
    top_reasons = serializers.IntegerField(required=False, min_value=1, max_value=20, default=4)

    def validate(self, attrs):
        given = [k for k in ("applicant_id", "external_id", "applicant") if k in attrs]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of applicant_id, external_id or applicant.")
        return attrs


class PublicErrorField(serializers.CharField):
    """A stored failure as users see it: no traceback, no file paths."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return public_error_text(value)


class ModelVersionSerializer(serializers.ModelSerializer):
    error = PublicErrorField()

    class Meta:
        model = ModelVersion
        fields = ["id", "portfolio", "version", "kind", "status", "schema", "hyperparameters", "seed",
                  "training_data_fingerprint", "training_rows", "code_version", "device", "artifact_sha256",
                  "tuning_study", "trained_by", "created_at", "trained_at", "approved_by", "approved_at",
                  "promoted_by", "promoted_at", "promotion_override_reason", "promotion_override_by",
                  "promotion_override_at", "rejection_reason", "rejected_by", "rejected_at", "progress",
                  "error", "training_group"]  # fmt: skip


class ValidationNoteSerializer(serializers.ModelSerializer):
    """A validator's note on a model version, with who wrote it and when."""

    author_username = serializers.SerializerMethodField()

    class Meta:
        model = ValidationNote
        fields = ["id", "model_version", "author", "author_username", "text", "created_at"]
        read_only_fields = fields

    def get_author_username(self, note: ValidationNote) -> str:
        return note.author.get_username() if note.author else ""


class ModelVersionDetailSerializer(ModelVersionSerializer):
    validation_notes = ValidationNoteSerializer(many=True, read_only=True)

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "validation_notes", "metrics", "baseline_metrics", "validations",
                  "screen"]  # fmt: skip


class ModelStatusSerializer(serializers.ModelSerializer):
    """Where a model version is in its life cycle, and its training progress."""

    error = PublicErrorField()

    class Meta:
        model = ModelVersion
        fields = ["id", "version", "kind", "status", "progress", "error", "created_at", "started_at", "trained_at",
                  "approved_at", "promoted_at"]  # fmt: skip
        read_only_fields = fields


class ModelMetricsSerializer(serializers.ModelSerializer):
    """Discrimination and calibration on each split, beside the logistic-regression baseline."""

    class Meta:
        model = ModelVersion
        fields = ["id", "version", "kind", "status", "training_rows", "training_data_fingerprint", "metrics",
                  "baseline_metrics", "validations", "screen"]  # fmt: skip
        read_only_fields = fields


class PromoteRequestSerializer(serializers.Serializer):
    override_reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000,
        help_text="why to promote despite a failed stability or fairness report or a leakage-screen finding "
        "(recorded and audited)",
    )  # fmt: skip


class RejectRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX, help_text="why the version is rejected (kept and audited)")


class RestoreRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX, help_text="why to roll back (kept in the audit event)")


class ValidationNoteRequestSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=NOTE_MAX, help_text="what the validation found")


# Seeds as the portal takes them: a whole number a 32-bit signed column holds (an unbounded one overflowed SQLite, a 500).
SEED_MAX = 2**31 - 1


class TrainRequestSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ModelVersion.KIND_CHOICES, required=False, help_text="one family")
    kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=ModelVersion.KIND_CHOICES), required=False, min_length=1,
        max_length=len(ModelVersion.KIND_CHOICES),
        help_text="several families, one version each, in one training group on the same split (instead of kind); "
        "hyperparameters then map each kind to its own values",
    )  # fmt: skip
    seed = serializers.IntegerField(default=0, min_value=0, max_value=SEED_MAX)  # the database column holds it
    hyperparameters = serializers.DictField(required=False, default=dict)

    def validate(self, attrs):
        if ("kind" in attrs) == ("kinds" in attrs):
            raise serializers.ValidationError({"kinds": ["Give either kind or kinds."]})
        return attrs


class TrainResponseSerializer(ModelVersionSerializer):
    """The (first) version queued, and every version of its training group."""

    group_versions = serializers.SerializerMethodField(help_text="the versions queued by this request, in order")

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "group_versions"]

    def get_group_versions(self, version: ModelVersion) -> list[dict]:
        return list(ModelVersionSerializer(self.context.get("group") or [version], many=True).data)


class LeaderboardFiguresSerializer(serializers.Serializer):
    n = serializers.IntegerField(allow_null=True)
    bad_rate = serializers.FloatField(allow_null=True)
    mean_pd = serializers.FloatField(allow_null=True)
    auc = serializers.FloatField(allow_null=True)
    gini = serializers.FloatField(allow_null=True)
    ks = serializers.FloatField(allow_null=True)
    brier = serializers.FloatField(allow_null=True)
    log_loss = serializers.FloatField(allow_null=True)
    deciles = serializers.ListField(child=serializers.DictField(), help_text="calibration by decile of predicted PD")


class LeaderboardEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="version.pk")
    version = serializers.IntegerField(source="version.version")
    kind = serializers.CharField(source="version.kind")
    status = serializers.CharField(source="version.status")
    metrics = LeaderboardFiguresSerializer(allow_null=True, help_text="on the shared test rows; null until trained")
    fit_seconds = serializers.FloatField(allow_null=True)
    training_seconds = serializers.FloatField(allow_null=True, help_text="claimed to done, every split scheme")
    explained_rows_per_s = serializers.FloatField(allow_null=True, help_text="exact explanations, test rows")


class LeaderboardSerializer(serializers.Serializer):
    training_group = serializers.UUIDField(source="group", allow_null=True)
    same_rows = serializers.BooleanField()
    figures_from = serializers.ChoiceField(
        source="source",
        choices=["stored", "rescored"],
        help_text="stored: each version's figures from training; rescored: scored again on one test split",
    )
    test_rows = serializers.IntegerField(allow_null=True)
    test_rows_sha256 = serializers.CharField(allow_null=True)
    entries = LeaderboardEntrySerializer(many=True)
    baseline = LeaderboardFiguresSerializer(allow_null=True, help_text="logistic regression on the same rows")
    baseline_fitted_with = serializers.IntegerField(source="baseline_version.pk", allow_null=True, default=None)


class TuneRequestSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ModelVersion.KIND_CHOICES)
    n_trials = serializers.IntegerField(
        min_value=1,
        max_value=settings.TUNE_MAX_TRIALS,
        default=min(20, settings.TUNE_MAX_TRIALS),
        help_text="trials, one task each (at most TUNE_MAX_TRIALS)",
    )
    seed = serializers.IntegerField(default=0, min_value=0, max_value=SEED_MAX)  # the database column holds it


class TuningStudySerializer(serializers.ModelSerializer):
    error = PublicErrorField()

    class Meta:
        model = TuningStudy
        fields = ["id", "portfolio", "kind", "study_name", "n_trials", "trials_done", "seed", "status", "best_value",
                  "best_params", "best_model_version", "error", "requested_by", "created_at", "finished_at"]  # fmt: skip
        read_only_fields = fields


class BatchRunSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = BatchRun
        fields = ["id", "portfolio", "model_version", "challenger_version", "status", "trigger", "chunk_size",
                  "rows_total", "rows_done", "chunks_total", "chunks_done", "decisions_differ", "progress",
                  "created_at", "started_at", "finished_at"]  # fmt: skip
        read_only_fields = fields

    def get_progress(self, run) -> dict:
        from scoring.services.batch import batch_run_progress

        return batch_run_progress(run)


class BatchRunRequestSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    model_version = serializers.IntegerField(required=False, help_text="approved version; default the champion")
    challenger = serializers.IntegerField(required=False, help_text="an approved version to shadow-score beside it")
    chunk_size = serializers.IntegerField(required=False, min_value=100, max_value=100_000, default=5000)


class ImportJobSerializer(serializers.ModelSerializer):
    """An import job with its validation report (``errors``: the first problems in row order,
    ``error_count``: all; ``summary``: every (column, problem) pair of the whole file with its
    count and first examples; ``warning_count``: cells accepted with a change)."""

    class Meta:
        model = ImportJob
        fields = ["id", "portfolio", "kind", "schema", "file_name", "file_sha256", "file_size", "status", "valid_only",
                  "rows_total", "rows_valid", "rows_invalid", "rows_created", "rows_updated", "rows_unchanged",
                  "error_count", "errors", "warning_count", "summary", "message", "created_by", "created_at", "started_at", "finished_at"]  # fmt: skip
        read_only_fields = fields


class ImportJobSummarySerializer(ImportJobSerializer):
    """In lists: the counts without the report's rows."""

    class Meta(ImportJobSerializer.Meta):
        fields = [f for f in ImportJobSerializer.Meta.fields if f not in ("errors", "summary")]
        read_only_fields = fields


class SchemaInferRequestSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField(help_text="The portfolio the file is meant for (its import grant is needed)")
    file = serializers.FileField(help_text="CSV (.csv, .csv.gz) or Parquet file; a sample of it is read")
    name = serializers.CharField(required=False, max_length=200, help_text="Schema name (default: the file's)")
    encoding = serializers.CharField(required=False, default="utf-8", max_length=40)
    sample_rows = serializers.IntegerField(required=False, default=50_000, min_value=10, max_value=500_000)
    top = serializers.IntegerField(required=False, default=50, min_value=1, max_value=5_000)


class RecordBatchRequestSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    records = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=10_000,
        help_text="Objects keyed by the schema's column names (applications) or applicant_id, defaulted, "
        "observed_on (outcomes); null for a missing value",
    )  # fmt: skip


class ImportRequestSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ImportJob.KIND_CHOICES)
    file = serializers.FileField(help_text="CSV (any delimiter, the given encoding) or Parquet")
    valid_only = serializers.BooleanField(
        default=False, help_text="write the valid rows and report the others, instead of rejecting the file"
    )
    encoding = serializers.CharField(default="utf-8")


class ReviewReportSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(source="model_version.pk")
    referred = serializers.IntegerField(help_text="applicants the version referred")
    reviewed = serializers.IntegerField(help_text="cases decided by review (resolved by review, either way)")
    approved = serializers.IntegerField()
    declined = serializers.IntegerField()
    overrides = serializers.IntegerField(help_text="final decisions differing from the model's (points vs cutoffs)")
    override_rate = serializers.FloatField(allow_null=True, help_text="overrides / reviewed")
