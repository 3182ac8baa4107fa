"""API representations. Thin: validation of shapes here, rules in services."""

from __future__ import annotations

from rest_framework import serializers

from scoring.models import Applicant, BatchRun, DatasetSchema, ImportJob, ModelVersion, Portfolio, Score


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
    class Meta:
        model = Applicant
        fields = ["id", "portfolio", "external_id", "schema", "features", "created_at", "updated_at"]


class ReasonSerializer(serializers.Serializer):
    feature = serializers.CharField()
    code = serializers.CharField()
    text = serializers.CharField()
    value = serializers.JSONField(allow_null=True)
    log_odds = serializers.FloatField()
    points = serializers.FloatField()


class ScoreSerializer(serializers.ModelSerializer):
    reasons = ReasonSerializer(many=True)
    model_version = serializers.IntegerField(source="model_version_id")

    class Meta:
        model = Score
        fields = ["id", "portfolio", "applicant", "run", "model_version", "is_shadow", "pd", "score", "decision",
                  "base_log_odds", "reasons", "input_hash", "created_at"]  # fmt: skip


class ScoreDetailSerializer(ScoreSerializer):
    class Meta(ScoreSerializer.Meta):
        fields = [*ScoreSerializer.Meta.fields, "contributions", "input_features"]


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


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "portfolio", "version", "kind", "status", "schema", "hyperparameters", "seed",
                  "training_data_fingerprint", "training_rows", "code_version", "device", "artifact_sha256",
                  "trained_by", "created_at", "trained_at", "approved_by", "approved_at", "promoted_by",
                  "promoted_at", "progress", "error"]  # fmt: skip


class ModelVersionDetailSerializer(ModelVersionSerializer):
    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "metrics", "baseline_metrics"]


class TrainRequestSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=[k for k, _ in ModelVersion.KIND_CHOICES])
    seed = serializers.IntegerField(default=0)
    hyperparameters = serializers.DictField(required=False, default=dict)


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
    challenger = serializers.IntegerField(required=False)
    chunk_size = serializers.IntegerField(required=False, min_value=100, max_value=100_000, default=5000)


class ImportJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportJob
        fields = ["id", "portfolio", "kind", "schema", "file_name", "file_sha256", "file_size", "status", "valid_only",
                  "rows_total", "rows_valid", "rows_invalid", "rows_created", "rows_updated", "rows_unchanged",
                  "error_count", "errors", "message", "created_by", "created_at", "started_at", "finished_at"]  # fmt: skip
        read_only_fields = fields


class ImportRequestSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=[k for k, _ in ImportJob.KIND_CHOICES])
    file = serializers.FileField()
    valid_only = serializers.BooleanField(default=False)
    encoding = serializers.CharField(default="utf-8")
