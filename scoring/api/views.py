"""REST API v1. Every viewset reads through ``scoring.permissions.restrict`` (one
gate); objects of other portfolios are invisible (404), actions needing a grant the
user lacks on a visible portfolio answer 403."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from scoring.api import serializers as s
from scoring.models import Applicant, BatchRun, DatasetSchema, ImportJob, ModelVersion, Portfolio, Score
from scoring.permissions import PortfolioActionPermission, has_portfolio_perm, restrict
from scoring.services.batch import BatchError, batch_run_cancel, batch_run_resume, batch_run_start
from scoring.services.exports import export_csv_lines, export_parquet
from scoring.services.ingestion import IngestionError, import_job_create
from scoring.services.registry import RegistryError, model_version_approve, model_version_promote
from scoring.services.scoring import ApplicantDataError, ScoringError, score_realtime
from scoring.services.training import model_training_start


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


SCORE_EXAMPLE = OpenApiExample(
    "Existing applicant",
    value={"external_id": "GC-0002"},
    request_only=True,
)
NEW_APPLICANT_EXAMPLE = OpenApiExample(
    "New applicant",
    value={
        "applicant": {
            "income": 42000,
            "loan_amount": 9000,
            "duration_months": 36,
            "debt_to_income": 0.31,
            "employment_years": 4.5,
            "num_credit_lines": 3,
            "home_ownership": "rent",
            "purpose": "car",
            "region": "north",
        },
        "history": [{"balance": 9000, "amount_paid": 270, "days_past_due": 0}],
    },
    request_only=True,
)


@extend_schema_view(
    list=extend_schema(summary="Portfolios you are granted"),
    retrieve=extend_schema(summary="One portfolio"),
)
class PortfolioViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = Portfolio.objects.select_related("schema").order_by("name")
    serializer_class = s.PortfolioSerializer
    portfolio_field = "id"
    required_portfolio_perms = {"score": "score_portfolio"}

    @extend_schema(
        summary="Score one applicant in real time with the champion model",
        request=s.ScoreRequestSerializer,
        responses={201: s.ScoreSerializer},
        examples=[SCORE_EXAMPLE, NEW_APPLICANT_EXAMPLE],
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
        try:
            score = score_realtime(
                portfolio=portfolio, requested_by=request.user, applicant=applicant,
                features=data.get("applicant"), history=data.get("history"), top_k=data["top_reasons"],
            )  # fmt: skip
        except ApplicantDataError as exc:
            raise ValidationError({"applicant": exc.problems}) from None
        except ScoringError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.ScoreSerializer(score).data, status=status.HTTP_201_CREATED)


class DatasetSchemaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Schemas are declarations, not applicant data: any authenticated user may read them."""

    queryset = DatasetSchema.objects.all()
    serializer_class = s.DatasetSchemaSerializer


@extend_schema_view(
    list=extend_schema(
        summary="Applicants of your portfolios",
        parameters=[
            OpenApiParameter("portfolio", int),
            OpenApiParameter("search", str, description="external id prefix"),
        ],
    ),
    retrieve=extend_schema(summary="One applicant"),
)
class ApplicantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = Applicant.objects.order_by("portfolio_id", "external_id")
    serializer_class = s.ApplicantSerializer
    filterset_fields = ["portfolio", "external_id"]

    def get_queryset(self):
        queryset = super().get_queryset()
        search = self.request.query_params.get("search")
        if search:
            queryset = queryset.filter(external_id__startswith=search)
        return queryset

    @extend_schema(summary="Scores of one applicant, newest first", responses={200: s.ScoreSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def scores(self, request, pk=None):
        applicant = self.get_object()
        page = self.paginate_queryset(Score.objects.filter(applicant=applicant).order_by("-created_at"))
        return self.get_paginated_response(s.ScoreSerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(summary="Scores of your portfolios"),
    retrieve=extend_schema(summary="One score with its full explanation"),
)
class ScoreViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = Score.objects.order_by("-created_at")
    filterset_fields = ["portfolio", "applicant", "run", "decision", "model_version"]

    def get_serializer_class(self):
        return s.ScoreDetailSerializer if self.action == "retrieve" else s.ScoreSerializer


@extend_schema_view(
    list=extend_schema(summary="Model versions"), retrieve=extend_schema(summary="One model version with its metrics")
)
class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = ModelVersion.objects.order_by("portfolio_id", "-version")
    filterset_fields = ["portfolio", "kind", "status"]
    required_portfolio_perms = {"approve": "validate_portfolio", "promote": "validate_portfolio"}

    def get_serializer_class(self):
        return s.ModelVersionDetailSerializer if self.action == "retrieve" else s.ModelVersionSerializer

    @extend_schema(
        summary="Train a model (queued on the train queue)",
        request=s.TrainRequestSerializer,
        responses={202: s.ModelVersionSerializer},
        examples=[OpenApiExample("MLP", value={"portfolio": 1, "kind": "mlp", "seed": 0}, request_only=True)],
    )
    @action(detail=False, methods=["post"])
    def train(self, request):
        body = s.TrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        portfolio = _visible_portfolio(request, body.validated_data["portfolio"], "train_portfolio")
        try:
            version = model_training_start(
                portfolio=portfolio, kind=body.validated_data["kind"], seed=body.validated_data["seed"],
                hyperparameters=body.validated_data["hyperparameters"], requested_by=request.user,
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise ValidationError({"hyperparameters": str(exc)}) from None
        return Response(s.ModelVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)

    def _transition(self, request, service):
        version = self.get_object()
        try:
            version = service(version=version, user=request.user)
        except RegistryError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.ModelVersionSerializer(version).data)

    @extend_schema(
        summary="Approve a trained model (four eyes: not by its trainer)",
        request=None,
        responses={200: s.ModelVersionSerializer},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._transition(request, model_version_approve)

    @extend_schema(
        summary="Make an approved model the champion", request=None, responses={200: s.ModelVersionSerializer}
    )
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        return self._transition(request, model_version_promote)


@extend_schema_view(
    list=extend_schema(summary="Batch scoring runs"), retrieve=extend_schema(summary="One run with its progress")
)
class BatchRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = BatchRun.objects.order_by("-created_at")
    serializer_class = s.BatchRunSerializer
    filterset_fields = ["portfolio", "status"]
    required_portfolio_perms = {"cancel": "score_portfolio", "resume": "score_portfolio", "export": "export_portfolio"}

    @extend_schema(
        summary="Start a batch scoring run",
        request=s.BatchRunRequestSerializer,
        responses={202: s.BatchRunSerializer},
        examples=[OpenApiExample("Champion", value={"portfolio": 1}, request_only=True)],
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
        except (ScoringError, BatchError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.BatchRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Cancel a run", request=None, responses={200: s.BatchRunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(s.BatchRunSerializer(batch_run_cancel(run=self.get_object())).data)

    @extend_schema(summary="Resume a cancelled or interrupted run", request=None, responses={200: s.BatchRunSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return Response(s.BatchRunSerializer(batch_run_resume(run=self.get_object())).data)

    @extend_schema(
        summary="Export a run's scores (CSV or Parquet; formula-like text cells escaped)",
        parameters=[OpenApiParameter("file_format", str, enum=["csv", "parquet"], default="csv")],
        responses={(200, "text/csv"): bytes, (200, "application/vnd.apache.parquet"): bytes},
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        run = self.get_object()
        file_format = request.query_params.get("file_format", "csv")
        if file_format == "csv":
            response = StreamingHttpResponse(export_csv_lines(run), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.csv"'
            return response
        if file_format == "parquet":
            handle = tempfile.NamedTemporaryFile(suffix=".parquet", dir=settings.VAR_DIR)  # noqa: SIM115 (FileResponse closes it)
            export_parquet(run, Path(handle.name))
            handle.seek(0)
            return FileResponse(handle, as_attachment=True, filename=f"run-{run.pk}.parquet")
        raise ValidationError({"file_format": "csv or parquet"})


@extend_schema_view(
    list=extend_schema(summary="Import jobs and their reports"),
    retrieve=extend_schema(summary="One import job with its report"),
)
class ImportJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = ImportJob.objects.order_by("-created_at")
    serializer_class = s.ImportJobSerializer
    filterset_fields = ["portfolio", "status", "kind"]

    @extend_schema(
        summary="Upload a file to import (validated completely before anything is written)",
        request={"multipart/form-data": s.ImportRequestSerializer},
        responses={202: s.ImportJobSerializer},
    )
    def create(self, request):
        from scoring.tasks import import_file

        body = s.ImportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        portfolio = _visible_portfolio(request, data["portfolio"], "import_portfolio")
        upload = data["file"]
        if upload.size > settings.IMPORT_MAX_FILE_MB * 1024 * 1024:
            raise ValidationError({"file": f"larger than {settings.IMPORT_MAX_FILE_MB} MB"})
        folder = Path(settings.MEDIA_ROOT) / "imports" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        path = folder / Path(upload.name).name
        with path.open("wb") as out:
            for part in upload.chunks():
                out.write(part)
        try:
            job = import_job_create(
                portfolio=portfolio, kind=data["kind"], path=path, valid_only=data["valid_only"],
                encoding=data["encoding"], created_by=request.user, file_name=upload.name,
            )  # fmt: skip
        except IngestionError as exc:
            raise ValidationError({"file": str(exc)}) from None
        transaction.on_commit(lambda: import_file.delay(job.pk, str(path), data["encoding"]))
        return Response(s.ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
