"""Retry and cancel actions of trainings, tuning studies and imports (API v1).

A mixin for their viewsets: ``POST /models/{id}/retry/``, ``/models/{id}/cancel/``,
and the same under ``/tuning-studies/`` and ``/imports/``. The rules (which states,
which grant) are the service's (``scoring.services.jobs``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from scoring.services import jobs


def job_action_schemas(retried: dict, cancelled: dict) -> dict:
    """The retry/cancel actions' documented answers, per viewset (``extend_schema_view``
    keywords): the mixin's methods are shared, their example bodies are not."""
    return {
        "retry": extend_schema(examples=[OpenApiExample("Queued again", value=retried, response_only=True)]),
        "cancel": extend_schema(examples=[OpenApiExample("Cancelled", value=cancelled, response_only=True)]),
    }


class JobActionsMixin:
    """Set ``job_kind`` ("training", "tuning", "import") and ``job_serializer``."""

    job_kind: str
    job_serializer: type
    get_object: Callable[[], Any]  # from the view (GenericAPIView) this mixes into

    def _act(self, request, table: dict):
        _model, argument = jobs.MODELS[self.job_kind]
        # A refusal (a ServiceError) is mapped by the API's one exception handler.
        obj = table[self.job_kind](**{argument: self.get_object(), "user": request.user})
        return Response(self.job_serializer(obj).data)

    @extend_schema(summary="Retry a failed job (its worker died, or it failed)", request=None)
    @action(detail=True, methods=["post"], filterset_class=None)
    def retry(self, request, pk=None):
        return self._act(request, jobs.RETRY)

    @extend_schema(summary="Cancel a queued or running job (it is marked failed, and may be retried)", request=None)
    @action(detail=True, methods=["post"], filterset_class=None)
    def cancel(self, request, pk=None):
        return self._act(request, jobs.CANCEL)
