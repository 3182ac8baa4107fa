"""REST API v1. Every viewset reads through ``scoring.permissions.restrict`` (one
gate); objects of other portfolios are invisible (404), actions needing a grant the
user lacks on a visible portfolio answer 403."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from scoring.api import examples as ex
from scoring.api import serializers as s
from scoring.api.errors import ErrorResponseSerializer, error_body
from scoring.api.jobs import JobActionsMixin, job_action_schemas
from scoring.audit import audit_record
from scoring.filters import (
    ApplicantFilter,
    BatchRunFilter,
    ImportJobFilter,
    ModelVersionFilter,
    ScoreFilter,
    TuningStudyFilter,
)
from scoring.models import Applicant, BatchRun, DatasetSchema, ImportJob, ModelVersion, Portfolio, Score, TuningStudy
from scoring.permissions import PortfolioActionPermission, has_portfolio_perm, restrict
from scoring.services import display
from scoring.services.batch import batch_run_cancel, batch_run_resume, batch_run_start
from scoring.services.explanations import score_explanation
from scoring.services.exports import export_csv_lines, export_parquet_store, export_stream
from scoring.services.import_reports import import_report_csv_lines
from scoring.services.ingestion import IngestionError, import_job_create, import_upload_discard, import_upload_store
from scoring.services.recourse import score_recourse
from scoring.services.registry import (
    champion_restore_previous,
    model_version_approve,
    model_version_promote,
    model_version_reject,
    model_version_restore,
)
from scoring.services.scoring import score_realtime
from scoring.services.training import model_group_training_start, model_training_start
from scoring.services.tuning import tuning_study_start
from scoring.services.validation import validation_note_add


def _visible_portfolio(request, portfolio_id: int, perm: str | None = None) -> Portfolio:
    """A portfolio the user may see (404 otherwise), and act on with ``perm`` (403 otherwise)."""
    portfolio = get_object_or_404(
        restrict(Portfolio.objects.select_related("schema"), request.user, field="id"), pk=portfolio_id
    )
    if perm and not has_portfolio_perm(request.user, portfolio, perm):
        raise PermissionDenied(f"You may not do this in portfolio {portfolio.name}.")
    return portfolio


class ScopedViewSet(viewsets.GenericViewSet):
    """Base of every portfolio-data viewset: the queryset is restricted by the gate."""

    portfolio_field = "portfolio_id"
    required_portfolio_perms: dict[str, str] = {}

    def get_permissions(self):
        return [*super().get_permissions(), PortfolioActionPermission()]

    def get_queryset(self):
        return restrict(super().get_queryset(), self.request.user, field=self.portfolio_field)


def conflict(description: str, message: str) -> OpenApiResponse:
    """A documented 409 with an example in the error format."""
    return OpenApiResponse(
        ErrorResponseSerializer,
        description=description,
        examples=[ex.response("Conflict", error_body("conflict", message), status=409)],
    )


CONFLICT_MODEL = conflict(
    "The model version's status does not allow this step now, or four eyes forbid it.",
    "Four eyes: the person who trained a model cannot approve it.",
)


def _example_list(*pairs) -> list[OpenApiExample]:
    return [ex.response(name, value) for name, value in pairs]


@extend_schema(tags=["Portfolios"])
@extend_schema_view(
    list=extend_schema(
        summary="List the portfolios you are granted",
        examples=_example_list(("Portfolio", ex.PORTFOLIO)),
    ),
    retrieve=extend_schema(
        summary="Get one portfolio: its schema, points scale and decision cut-offs",
        examples=_example_list(("Portfolio", ex.PORTFOLIO)),
    ),
)
class PortfolioViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = Portfolio.objects.select_related("schema").order_by("name")
    serializer_class = s.PortfolioSerializer
    portfolio_field = "id"
    required_portfolio_perms = {"score": "score_portfolio", "restore_champion": "validate_portfolio"}

    @extend_schema(
        summary="Score one applicant in real time with the champion model",
        description="An existing applicant (by `applicant_id` or `external_id`), or a new applicant's data, "
        "validated with the import rules of the portfolio's schema (a 400 lists every problem) and scored "
        "without being saved. The score row (PD, points, decision, reasons, contributions, input) is stored. "
        "Needs the score grant; 409 when the portfolio has no champion.",
        request=s.ScoreRequestSerializer,
        responses={
            201: s.ScoreSerializer,
            409: conflict(
                "The portfolio has no champion model.",
                "Synthetic has no champion model: approve and promote one first.",
            ),
        },
        examples=[
            # After `make run`, portfolio 1 is German credit and 2 Synthetic: one example each.
            ex.request(
                "Existing applicant (German credit, portfolio 1)",
                {"external_id": "GC-0001"},
                description="POST /api/v1/portfolios/1/score/",
            ),
            ex.request(
                "Existing applicant (Synthetic, portfolio 2)",
                {"external_id": "SYN00004711"},
                description="POST /api/v1/portfolios/2/score/",
            ),
            ex.request(
                "New applicant (German credit, portfolio 1)",
                {"applicant": ex.GERMAN_FEATURES, "top_reasons": 4},
                description="POST /api/v1/portfolios/1/score/",
            ),
            ex.request(
                "New applicant (Synthetic, portfolio 2)",
                {
                    "applicant": ex.FEATURES,
                    "history": [{"balance": 9000, "amount_paid": 270, "days_past_due": 0}],
                    "top_reasons": 4,
                },
                description="POST /api/v1/portfolios/2/score/. History months oldest first; only CNN models read them.",
            ),
            ex.response("Refer", ex.SCORE, status=201),
        ],
    )
    @action(detail=True, methods=["post"])
    def score(self, request, pk=None):
        portfolio = self.get_object()
        body = s.ScoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        applicant = None
        if "applicant_id" in data or "external_id" in data:
            lookup = {"pk": data["applicant_id"]} if "applicant_id" in data else {"external_id": data["external_id"]}
            applicant = Applicant.objects.filter(portfolio=portfolio, **lookup).first()
            if applicant is None:
                raise NotFound("No such applicant in this portfolio.")
        # A ScoringError (409) or ApplicantDataError (400) is answered by the API's exception handler.
        score = score_realtime(
            portfolio=portfolio, requested_by=request.user, applicant=applicant,
            features=data.get("applicant"), history=data.get("history"), top_k=data["top_reasons"],
        )  # fmt: skip
        return Response(s.ScoreSerializer(score).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["Models"],
        summary="Roll back: restore the previous champion (one click, with a reason)",
        description="The retired version that was champion most recently becomes champion again; the current "
        "champion retires. Needs the validate grant on the portfolio; four eyes: its trainer cannot restore it. "
        "The reason is audited. The next real-time score uses the restored version. 409 when there is no "
        "previous champion.",
        request=s.RestoreRequestSerializer,
        responses={200: s.ModelVersionSerializer, 409: CONFLICT_MODEL},
        examples=[ex.request("Roll back", {"reason": ex.ROLLBACK_REASON}), ex.response("Restored", ex.MODEL_RESTORED)],
    )
    @action(detail=True, methods=["post"], url_path="restore-champion")
    def restore_champion(self, request, pk=None):
        portfolio = self.get_object()
        body = s.RestoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = champion_restore_previous(  # RegistryError: 409, by the exception handler
            portfolio=portfolio, user=request.user, reason=body.validated_data["reason"], request=request
        )
        return Response(s.ModelVersionSerializer(version).data)


@extend_schema(tags=["Schemas"])
@extend_schema_view(
    list=extend_schema(
        summary="List the dataset schemas (columns, roles, types, ranges)",
        examples=_example_list(("Schema", ex.SCHEMA)),
    ),
    retrieve=extend_schema(summary="Get one dataset schema version", examples=_example_list(("Schema", ex.SCHEMA))),
)
class DatasetSchemaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Schemas are declarations, not applicant data: any authenticated user may read them."""

    queryset = DatasetSchema.objects.order_by("name", "-version")
    serializer_class = s.DatasetSchemaSerializer


@extend_schema(tags=["Applicants"])
@extend_schema_view(
    list=extend_schema(
        summary="List the applicants of your portfolios",
        description="Filter by portfolio, external id (exact or prefix), creation time, and the decision or "
        "points of the applicant's latest score (challenger shadow scores are not decisions).",
        examples=_example_list(("Applicant", ex.APPLICANT)),
    ),
    retrieve=extend_schema(
        summary="Get one applicant (model inputs; never PII or protected attributes)",
        examples=_example_list(("Applicant", ex.APPLICANT)),
    ),
)
class ApplicantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = Applicant.objects.order_by("portfolio_id", "external_id")
    serializer_class = s.ApplicantSerializer
    filterset_class = ApplicantFilter

    def retrieve(self, request, *args, **kwargs):
        applicant = self.get_object()
        audit_record(action="applicant.view", request=request, portfolio_id=applicant.portfolio_id,
                     object_type="applicant", object_ids=[applicant.pk])  # fmt: skip
        return Response(self.get_serializer(applicant).data)

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        filters = {k: v[:200] for k, v in request.query_params.items() if k not in ("page", "page_size")}
        audit_record(action="applicant.list", request=request, object_type="applicant",
                     details={"filters": filters, "rows": response.data.get("count")})  # fmt: skip
        return response

    @extend_schema(
        summary="List the scores of one applicant, newest first",
        responses={200: s.ScoreSerializer(many=True)},
        examples=_example_list(("Score", ex.SCORE)),
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def scores(self, request, pk=None):
        applicant = self.get_object()
        page = self.paginate_queryset(
            Score.objects.filter(applicant=applicant).select_related("model_version").order_by("-created_at", "-id")
        )
        return self.get_paginated_response(s.ScoreSerializer(page, many=True).data)


@extend_schema(tags=["Scores"])
@extend_schema_view(
    list=extend_schema(
        summary="List the scores of your portfolios, newest first",
        description="Filter by portfolio, applicant, batch run, model version, decision, shadow or not, points "
        "and creation time.",
        examples=_example_list(("Score", ex.SCORE)),
    ),
    retrieve=extend_schema(
        summary="Get one score with its contributions and exact input",
        examples=_example_list(("Score", ex.SCORE_DETAIL)),
    ),
)
class ScoreViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = Score.objects.select_related("model_version").order_by("-created_at", "-id")
    filterset_class = ScoreFilter

    def get_serializer_class(self):
        return s.ScoreDetailSerializer if self.action == "retrieve" else s.ScoreSerializer

    @extend_schema(
        summary="Explain one decision: base value, every input group's contribution, the reasons",
        description="Read from the stored score, so it is the explanation given at the time, whatever model is "
        "champion now. `base_log_odds` plus the contributions' `log_odds` is the log-odds of `pd`; points are "
        "on the portfolio's current `scale`. 409 when the model version's artifact cannot be loaded.",
        responses={
            200: s.ScoreExplanationSerializer,
            409: conflict(
                "The model version's artifact is missing or altered.",
                "The artifact of model version 7 cannot be loaded: SHA-256 ... does not match the recorded ...",
            ),
        },
        examples=_example_list(("Explanation", ex.EXPLANATION)),
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def explanation(self, request, pk=None):
        score = self.get_object()
        audit_record(action="applicant.explain", request=request, portfolio_id=score.portfolio_id, object_type="score",
                     object_ids=[score.pk], details={"applicant": score.applicant_id})  # fmt: skip
        explanation = score_explanation(score=score)  # ExplanationError: 409, by the exception handler
        return Response(s.ScoreExplanationSerializer(explanation).data)

    @extend_schema(
        summary="What would it take: the smallest changes of actionable features that reach approve",
        description="For a declined or referred score: up to `k` (1-5, default 3) change sets of at most three "
        "actionable features (the schema's `actionable`; protected and immutable features never change, a CNN "
        "applicant's history stays as scored), cheapest first, each scored by the score's model version under the "
        "policy version it was decided under (cutoffs and strategy rules) and confirmed through the real scoring "
        "path. `feasible: false` says no change within the features' bounds reaches approve. Nothing is saved; "
        "the request is audited. 409 for a challenger's shadow score or an unloadable artifact.",
        parameters=[OpenApiParameter("k", OpenApiTypes.INT, description="how many change sets, 1-5 (default 3)")],
        responses={
            200: s.ScoreRecourseSerializer,
            409: conflict(
                "A challenger's shadow score, or the model version's artifact is missing or altered.",
                "A challenger's shadow score is not a decision: ask recourse for the champion's score.",
            ),
        },
        examples=_example_list(
            ("Changes that reach approve", ex.RECOURSE), ("No change within bounds", ex.RECOURSE_NONE)
        ),
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def recourse(self, request, pk=None):
        score = self.get_object()
        try:
            k = int(request.query_params.get("k", 3))
        except ValueError:
            raise ValidationError({"k": ["A whole number from 1 to 5."]}) from None
        if not 1 <= k <= 5:
            raise ValidationError({"k": ["A whole number from 1 to 5."]})
        recourse = score_recourse(score=score, k=k)  # RecourseError: 409, by the exception handler
        audit_record(action="applicant.recourse", request=request, portfolio_id=score.portfolio_id,
                     object_type="score", object_ids=[score.pk],
                     details={"applicant": score.applicant_id, "suggestions": len(recourse.suggestions)})  # fmt: skip
        return Response(s.ScoreRecourseSerializer(display.recourse_view(score.model_version.schema, recourse)).data)


@extend_schema(tags=["Models"])
@extend_schema_view(
    list=extend_schema(
        summary="List the model versions of your portfolios",
        examples=_example_list(("Model version", ex.MODEL)),
    ),
    retrieve=extend_schema(
        summary="Get one model version with its metrics",
        examples=_example_list(("Model version", ex.MODEL_DETAIL)),
    ),
    **job_action_schemas(ex.MODEL_QUEUED, {**ex.MODEL, "status": "failed", "error": "Cancelled by developer_a."}),
)
class ModelVersionViewSet(JobActionsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = ModelVersion.objects.order_by("portfolio_id", "-version")
    filterset_class = ModelVersionFilter
    required_portfolio_perms = {
        "approve": "validate_portfolio", "promote": "validate_portfolio", "reject": "validate_portfolio",
        "restore": "validate_portfolio",
        "notes": "validate_portfolio", "retry": "train_portfolio", "cancel": "train_portfolio",
    }  # fmt: skip
    job_kind, job_serializer = "training", s.ModelVersionSerializer

    def get_serializer_class(self):
        return s.ModelVersionDetailSerializer if self.action == "retrieve" else s.ModelVersionSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        return queryset.prefetch_related("validation_notes__author") if self.action == "retrieve" else queryset

    @extend_schema(
        summary="Train a model (queued on the train queue)",
        description="Records a queued model version and enqueues its training; follow it with "
        "`GET /models/{id}/status/`. With `kinds`, one version per family in one training group, all on the "
        "same split (same rows and seed), compared by `GET /models/{id}/leaderboard/`; `hyperparameters` then "
        "map each kind to its own values. `group_versions` lists every version queued. Needs the train grant "
        "on the portfolio.",
        request=s.TrainRequestSerializer,
        responses={202: s.TrainResponseSerializer},
        examples=[
            ex.request("CNN", {"portfolio": 1, "kind": "cnn", "seed": 0, "hyperparameters": {"max_epochs": 40}}),
            ex.request("MLP with defaults", {"portfolio": 1, "kind": "mlp"}),
            ex.request(
                "MLP and trees on the same split",
                {
                    "portfolio": 1,
                    "kinds": ["mlp", "trees"],
                    "seed": 0,
                    "hyperparameters": {"trees": {"n_estimators": 400}},
                },
            ),
            ex.response("Queued", {**ex.MODEL_QUEUED, "group_versions": [ex.MODEL_QUEUED]}, status=202),
            ex.response("Queued, two families", ex.TRAIN_GROUP_QUEUED, status=202),
        ],
    )
    @action(detail=False, methods=["post"], filterset_class=None, pagination_class=None)
    def train(self, request):
        body = s.TrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        portfolio = _visible_portfolio(request, body.validated_data["portfolio"], "train_portfolio")
        data = body.validated_data
        # Out-of-space hyper-parameters (400) and too much queued work (429) are service errors.
        if "kinds" in data:
            group = model_group_training_start(
                portfolio=portfolio,
                kinds=data["kinds"],
                seed=data["seed"],
                hyperparameters=data["hyperparameters"],
                requested_by=request.user,
            )
        else:
            group = [
                model_training_start(
                    portfolio=portfolio,
                    kind=data["kind"],
                    seed=data["seed"],
                    hyperparameters=data["hyperparameters"],
                    requested_by=request.user,
                )
            ]
        body_out = s.TrainResponseSerializer(group[0], context={"group": group}).data
        return Response(body_out, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Compare the versions one training request trained, on the same rows, with the baseline",
        description="The version's training group (the families one request trained on the same split; the version "
        "alone otherwise), each with its stored test AUC, Gini, KS, Brier, log loss and calibration by decile, "
        "its fit time, time from claim to done and exact explanations per second, beside the logistic baseline "
        "on the same rows. `same_rows` holds when every version's stored test-row hash agrees (`figures_from` "
        "`stored`); otherwise the versions are scored again on the first one's test split (`rescored`). "
        "Versions not trained yet are listed with `metrics` null.",
        responses={200: s.LeaderboardSerializer, 409: conflict("Not comparable", "Model v2 has no trained artifact.")},
        examples=_example_list(("Two families", ex.LEADERBOARD)),
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def leaderboard(self, request, pk=None):
        from scoring.selectors import model_group_leaderboard_get

        board = model_group_leaderboard_get(user=request.user, version=self.get_object())
        return Response(s.LeaderboardSerializer(board).data)

    @extend_schema(
        summary="Tune hyper-parameters (Optuna; one task per trial on the train queue)",
        description="Creates a tuning study and enqueues its trials; the worker finishing the last trial trains "
        "the best configuration as a new model version (`best_model_version`). Follow it with "
        "`GET /tuning-studies/{id}/`. Needs the train grant on the portfolio.",
        request=s.TuneRequestSerializer,
        responses={202: s.TuningStudySerializer},
        examples=[
            ex.request("MLP, 20 trials", {"portfolio": 1, "kind": "mlp", "n_trials": 20, "seed": 0}),
            ex.response("Queued", ex.TUNING_STUDY, status=202),
        ],
    )
    @action(detail=False, methods=["post"], filterset_class=None, pagination_class=None)
    def tune(self, request):
        body = s.TuneRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        portfolio = _visible_portfolio(request, data["portfolio"], "train_portfolio")
        study = tuning_study_start(
            portfolio=portfolio, kind=data["kind"], n_trials=data["n_trials"], seed=data["seed"],
            requested_by=request.user,
        )  # fmt: skip
        return Response(s.TuningStudySerializer(study).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Get a model version's status and training progress",
        responses={200: s.ModelStatusSerializer},
        examples=_example_list(("Training", ex.MODEL_STATUS)),
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def status(self, request, pk=None):
        return Response(s.ModelStatusSerializer(self.get_object()).data)

    @extend_schema(
        summary="Get a model version's metrics beside the logistic-regression baseline",
        description="AUC, Gini, KS, Brier, log loss, deciles, cut-off table, ROC and KS curves on each split; "
        "`baseline_metrics` are a logistic regression's on the same split; `validations` has the test figures "
        "of each split scheme (`stratified`, and `out_of_time` when the schema dates applications; "
        "`trained_on` names the model's); `screen` is the leakage and sanity screen at training time.",
        responses={200: s.ModelMetricsSerializer},
        examples=_example_list(("Metrics", ex.MODEL_METRICS)),
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def metrics(self, request, pk=None):
        return Response(s.ModelMetricsSerializer(self.get_object()).data)

    @extend_schema(
        summary="Get a model version's review report: referred, decided by review, overrides",
        description="The applicants the version referred, the cases decided by review (approved, declined: every "
        "one is resolved by review), the overrides (a final decision differing from the model's own, its points "
        "against the cutoffs) and the override rate (overrides / reviewed).",
        responses={200: s.ReviewReportSerializer},
        examples=_example_list(("Report", ex.REVIEW_REPORT)),
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def reviews(self, request, pk=None):
        from scoring.selectors import review_report

        version = self.get_object()
        rows = review_report(user=request.user, model_version=version)
        row = rows[0] if rows else {"model_version": version, "referred": 0, "reviewed": 0, "approved": 0,
                                    "declined": 0, "overrides": 0, "override_rate": None}  # fmt: skip
        return Response(s.ReviewReportSerializer(row).data)

    def _transition(self, request, service, **kwargs):
        version = service(version=self.get_object(), user=request.user, **kwargs)  # RegistryError: 409
        return Response(s.ModelVersionSerializer(version).data)

    @extend_schema(
        summary="Approve a trained model (four eyes: not by its trainer)",
        description="Needs the validate grant on the portfolio; 409 when the version is not `trained` or the "
        "caller trained it.",
        request=None,
        responses={200: s.ModelVersionSerializer, 409: CONFLICT_MODEL},
        examples=_example_list(("Approved", ex.MODEL_APPROVED)),
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def approve(self, request, pk=None):
        return self._transition(request, model_version_approve)

    @extend_schema(
        summary="Make an approved model the champion (the previous one retires)",
        description="Needs the validate grant on the portfolio; 409 when the version is not `approved`, or while "
        "its latest stability or fairness report failed or its leakage screen flagged a feature or the model, "
        "and no `override_reason` says why to promote anyway "
        "(the reason is kept on the version and audited).",
        request=s.PromoteRequestSerializer,
        responses={200: s.ModelVersionSerializer, 409: CONFLICT_MODEL},
        examples=[
            ex.request("Reports passed", {}),
            ex.request(
                "Override a failed report",
                {"override_reason": "PSI breach from the new branch network; reviewed with the risk committee."},
            ),
            ex.response("Champion", ex.MODEL_CHAMPION),
        ],
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def promote(self, request, pk=None):
        body = s.PromoteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["override_reason"]

        def promote(*, version, user):
            return model_version_promote(version=version, user=user, override_reason=reason, request=request)

        return self._transition(request, promote)

    @extend_schema(
        summary="Reject a model version for good, with a reason",
        description="Needs the validate grant on the portfolio. A rejected version is never approved, promoted "
        "or restored afterwards, by any entry point; the reason is kept on the version with who and when, "
        "and audited. 409 for the champion (promote another version first) and for versions not yet trained.",
        request=s.RejectRequestSerializer,
        responses={200: s.ModelVersionSerializer, 409: CONFLICT_MODEL},
        examples=[
            ex.request("Below the baseline", {"reason": ex.MODEL_REJECTED["rejection_reason"]}),
            ex.response("Rejected", ex.MODEL_REJECTED),
        ],
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def reject(self, request, pk=None):
        body = s.RejectRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"]

        def reject(*, version, user):
            return model_version_reject(version=version, user=user, reason=reason, request=request)

        return self._transition(request, reject)

    @extend_schema(
        summary="Roll back: make a previously approved, retired version the champion again",
        description="Needs the validate grant on the portfolio and a reason (audited); the current champion "
        "retires. Four eyes: the version's trainer cannot restore it. 409 for a version that was never approved "
        "or is not retired (a rejected version never returns).",
        request=s.RestoreRequestSerializer,
        responses={200: s.ModelVersionSerializer, 409: CONFLICT_MODEL},
        examples=[ex.request("Roll back", {"reason": ex.ROLLBACK_REASON}), ex.response("Restored", ex.MODEL_RESTORED)],
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def restore(self, request, pk=None):
        body = s.RestoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"]

        def restore(*, version, user):
            return model_version_restore(version=version, user=user, reason=reason, request=request)

        return self._transition(request, restore)

    @extend_schema(
        summary="Add a validation note to a model version",
        description="Needs the validate grant on the portfolio. Notes are kept with who wrote them and when, "
        "never edited, and audited with the SHA-256 of their text; they are listed in "
        "`GET /models/{id}/` as `validation_notes`.",
        request=s.ValidationNoteRequestSerializer,
        responses={201: s.ValidationNoteSerializer},
        examples=[
            ex.request("Finding", {"text": ex.VALIDATION_NOTE["text"]}),
            ex.response("Note", ex.VALIDATION_NOTE, status=201),
        ],
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def notes(self, request, pk=None):
        body = s.ValidationNoteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = validation_note_add(
            version=self.get_object(), user=request.user, text=body.validated_data["text"], request=request
        )
        return Response(s.ValidationNoteSerializer(note).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["Models"])
@extend_schema_view(
    list=extend_schema(
        summary="List the hyper-parameter tuning studies of your portfolios",
        examples=_example_list(("Study", ex.TUNING_STUDY)),
    ),
    retrieve=extend_schema(
        summary="Get one tuning study: trials done, best value and parameters, the model it trained",
        examples=_example_list(("Done", ex.TUNING_STUDY_DONE)),
    ),
    **job_action_schemas(
        {**ex.TUNING_STUDY, "status": "queued"}, {**ex.TUNING_STUDY, "status": "failed", "error": "Cancelled."}
    ),
)
class TuningStudyViewSet(JobActionsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = TuningStudy.objects.order_by("-created_at", "-id")
    serializer_class = s.TuningStudySerializer
    filterset_class = TuningStudyFilter
    required_portfolio_perms = {"retry": "train_portfolio", "cancel": "train_portfolio"}
    job_kind, job_serializer = "tuning", s.TuningStudySerializer


@extend_schema(tags=["Batch scoring"])
@extend_schema_view(
    list=extend_schema(
        summary="List the batch scoring runs of your portfolios", examples=_example_list(("Run", ex.BATCH_RUN))
    ),
    retrieve=extend_schema(
        summary="Get one batch run with its progress (rows/s, ETA)", examples=_example_list(("Run", ex.BATCH_RUN))
    ),
)
class BatchRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = BatchRun.objects.order_by("-created_at", "-id")
    serializer_class = s.BatchRunSerializer
    filterset_class = BatchRunFilter
    required_portfolio_perms = {"cancel": "score_portfolio", "resume": "score_portfolio", "export": "export_portfolio"}

    @extend_schema(
        summary="Start a batch scoring run of a whole portfolio",
        description="Scores every applicant with the champion (or an approved `model_version`), in chunks on the "
        "score queue; an approved `challenger` shadow-scores the same rows. Needs the score grant.",
        request=s.BatchRunRequestSerializer,
        responses={
            202: s.BatchRunSerializer,
            409: conflict(
                "No champion, a version that may not score (not approved), or an unusable challenger.",
                "Model version 2 is trained: only approved models score.",
            ),
        },
        examples=[
            ex.request("Champion", {"portfolio": 1}),
            ex.request("Champion and challenger", {"portfolio": 1, "challenger": 8, "chunk_size": 5000}),
            ex.response("Started", ex.BATCH_RUN_STARTED, status=202),
        ],
    )
    def create(self, request):
        body = s.BatchRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        portfolio = _visible_portfolio(request, data["portfolio"], "score_portfolio")
        versions = ModelVersion.objects.filter(portfolio=portfolio)
        try:
            run = batch_run_start(
                portfolio=portfolio,
                model_version=versions.get(pk=data["model_version"]) if "model_version" in data else None,
                challenger=versions.get(pk=data["challenger"]) if "challenger" in data else None,
                chunk_size=data["chunk_size"], requested_by=request.user, trigger="api",
            )  # fmt: skip
        except ModelVersion.DoesNotExist:
            raise NotFound("No such model version in this portfolio.") from None
        return Response(s.BatchRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Cancel a run (chunks already scored are kept)",
        request=None,
        responses={200: s.BatchRunSerializer},
        examples=_example_list(("Cancelled", {**ex.BATCH_RUN, "status": "cancelled"})),
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def cancel(self, request, pk=None):
        return Response(s.BatchRunSerializer(batch_run_cancel(run=self.get_object(), actor=request.user)).data)

    @extend_schema(
        summary="Resume a cancelled or interrupted run (only unfinished chunks are enqueued)",
        request=None,
        responses={200: s.BatchRunSerializer},
        examples=_example_list(("Running again", ex.BATCH_RUN)),
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def resume(self, request, pk=None):
        return Response(s.BatchRunSerializer(batch_run_resume(run=self.get_object(), actor=request.user)).data)

    @extend_schema(
        summary="Export a run's scores as CSV or Parquet",
        description="Text cells that a spreadsheet would read as a formula (starting with =, +, -, @, tab or "
        "carriage return) are escaped with a leading apostrophe; numbers stay numbers. Needs the export grant.",
        parameters=[OpenApiParameter("file_format", str, enum=["csv", "parquet"], default="csv")],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
        },
        examples=[
            OpenApiExample(
                "CSV",
                value="score_id,applicant_external_id,model_version,pd,score,decision,reason_1,reason_2,reason_3,"
                "reason_4,input_hash,created_at\r\n"
                "90211,SYN00004711,cnn v3,0.0790736768698401,557.9592,refer,R004 Debt to income ratio too high: 0.61,"
                "R016 Payments 30+ days late in 2 of the last 6 months,R005 Employment years: 0.5,"
                "R002 Loan amount: 9000.0,9b2f4c1e0d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c,"
                "2026-11-03T09:41:27.512000+00:00\r\n",
                media_type="text/csv",
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def export(self, request, pk=None):
        run = self.get_object()
        file_format = request.query_params.get("file_format", "csv")
        if file_format == "csv":
            lines = export_csv_lines(run, actor=request.user, request=request)  # audited when the stream ends
            response = StreamingHttpResponse(lines, content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.csv"'
            return response
        if file_format == "parquet":
            name = export_parquet_store(run, actor=request.user, request=request)
            response = StreamingHttpResponse(export_stream(name), content_type="application/vnd.apache.parquet")
            response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.parquet"'
            return response
        raise ValidationError({"file_format": ["csv or parquet"]})


@extend_schema(tags=["Imports"])
@extend_schema_view(
    list=extend_schema(
        summary="List the import jobs of your portfolios (counts; the report rows are in each job)",
        examples=_example_list(("Rejected", ex.IMPORT_JOB_SUMMARY)),
    ),
    retrieve=extend_schema(
        summary="Get one import job with its validation report",
        examples=_example_list(("Rejected", ex.IMPORT_JOB)),
    ),
    **job_action_schemas(ex.IMPORT_JOB_PENDING, {**ex.IMPORT_JOB_SUMMARY, "status": "failed"}),
)
class ImportJobViewSet(JobActionsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = ImportJob.objects.order_by("-created_at", "-id")
    filterset_class = ImportJobFilter
    required_portfolio_perms = {"retry": "import_portfolio", "cancel": "import_portfolio"}
    job_kind, job_serializer = "import", s.ImportJobSerializer

    def get_serializer_class(self):
        return s.ImportJobSummarySerializer if self.action == "list" else s.ImportJobSerializer

    @extend_schema(
        summary="Upload a file to import (validated completely before anything is written)",
        description="Applicants, repayment history or outcomes, as CSV or Parquet, checked against the "
        "portfolio's schema by a worker; the job's report lists every problem (row, column, value, message). "
        "A file with invalid rows writes nothing unless `valid_only`. Needs the import grant.",
        request={"multipart/form-data": s.ImportRequestSerializer},
        responses={202: s.ImportJobSerializer},
        examples=[
            ex.request(
                "Applicants CSV",
                ex.IMPORT_REQUEST,
                media_type="multipart/form-data",
            ),
            ex.response("Queued", ex.IMPORT_JOB_PENDING, status=202),
        ],
    )
    def create(self, request):
        from scoring.tasks import import_file

        body = s.ImportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        portfolio = _visible_portfolio(request, data["portfolio"], "import_portfolio")
        upload = data["file"]
        if upload.size > settings.IMPORT_MAX_FILE_MB * 1024 * 1024:
            raise ValidationError({"file": [f"larger than {settings.IMPORT_MAX_FILE_MB} MB"]})
        path = import_upload_store(upload=upload)
        try:
            job = import_job_create(
                portfolio=portfolio, kind=data["kind"], path=path, valid_only=data["valid_only"],
                encoding=data["encoding"], created_by=request.user, file_name=upload.name,
            )  # fmt: skip
        except IngestionError as exc:
            import_upload_discard(path)
            raise ValidationError({"file": [str(exc)]}) from None
        transaction.on_commit(lambda: import_file.delay(job.pk, str(path), data["encoding"]))
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    def _records(self, request, kind: str):
        from scoring.services.ingestion.batches import records_import

        body = s.RecordBatchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        portfolio = _visible_portfolio(request, body.validated_data["portfolio"], "import_portfolio")
        # A RecordsRejected (400, with the report in the file format) is answered by the handler.
        job = records_import(
            portfolio=portfolio, kind=kind, records=body.validated_data["records"], created_by=request.user
        )
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Send a batch of applications as JSON (validated like a file, all or nothing, idempotent)",
        description="Each record is an applicant keyed by the schema's columns; upserted by its external id, so "
        "a batch sent twice changes nothing. A record without a label is an application to score. Problems "
        "answer 400 in the report's format (record 1 is row 2) and nothing is written. Needs the import grant.",
        request=s.RecordBatchRequestSerializer,
        responses={201: s.ImportJobSerializer},
        examples=[
            ex.request("Applications", {"portfolio": 1, "records": [{"applicant_id": "A-1001", **ex.FEATURES}]}),
            ex.response("Stored", {**ex.IMPORT_JOB, "status": "succeeded", "errors": [], "summary": []}, status=201),
        ],
    )  # fmt: skip
    @action(detail=False, methods=["post"], url_path="applications", filterset_class=None)
    def applications(self, request):
        return self._records(request, ImportJob.KIND_APPLICANTS)

    @extend_schema(
        summary="Send a batch of outcomes as JSON (applicant_id, defaulted, observed_on)",
        description="Outcomes of applicants already sent, validated like an outcome file; idempotent by "
        "(applicant, observed_on). Needs the import grant.",
        request=s.RecordBatchRequestSerializer,
        responses={201: s.ImportJobSerializer},
        examples=[
            ex.request("Outcomes", {"portfolio": 1, "records": [
                {"applicant_id": "A-1001", "defaulted": True, "observed_on": "2026-10-01"}]}),
            ex.response("Stored", {**ex.IMPORT_JOB, "kind": "outcomes", "status": "succeeded", "errors": [],
                                   "summary": []}, status=201),
        ],
    )  # fmt: skip
    @action(detail=False, methods=["post"], url_path="outcomes", filterset_class=None)
    def outcomes(self, request):
        return self._records(request, ImportJob.KIND_OUTCOMES)

    @extend_schema(
        summary="Propose a schema for a file: types (money, date formats), id, features, PII, target candidates",
        description="Reads a sample of the uploaded file (deleted within the request) and returns "
        "`{schema, columns: [profile with frequencies and reasons], targets, rows_sampled}`: the schema to "
        "review and register. Nothing is imported. Needs the import grant on `portfolio`.",
        request={"multipart/form-data": s.SchemaInferRequestSerializer},
        responses={200: OpenApiTypes.OBJECT},
        examples=[
            ex.request("A raw loan file", ex.SCHEMA_INFER_REQUEST, media_type="multipart/form-data"),
            ex.response("Proposal", ex.SCHEMA_INFER_RESULT),
        ],
    )
    @action(detail=False, methods=["post"], url_path="infer-schema", filterset_class=None)
    def infer_schema(self, request):
        from scoring.services.errors import ForbiddenError
        from scoring.services.ingestion.inference import schema_infer_upload

        body = s.SchemaInferRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        portfolio = _visible_portfolio(request, data.pop("portfolio"))
        upload = data.pop("file")
        try:
            result = schema_infer_upload(user=request.user, portfolio=portfolio, upload=upload, **data)
        except ForbiddenError as exc:
            raise PermissionDenied(exc.message) from None
        except IngestionError as exc:
            raise ValidationError({"file": [str(exc)]}) from None
        return Response(result)

    @extend_schema(
        summary="Download an import job's validation report as CSV (row, column, value, message)",
        description="The problems the report kept (the first `IMPORT_MAX_REPORTED_ERRORS`; `error_count` "
        "counts all). Values of personal-data columns are redacted. Cells are escaped like exports.",
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
        examples=[
            OpenApiExample(
                "Report",
                value="row,column,value,message\r\n17,debt_to_income,lots,not a number\r\n"
                '902,purpose,yacht,"not one of car, home, education, other"\r\n',
                media_type="text/csv",
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def report(self, request, pk=None):
        job = self.get_object()
        response = StreamingHttpResponse(import_report_csv_lines(job), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-report.csv"'
        return response
