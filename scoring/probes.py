"""Endpoints for the platform rather than for people: ``/readyz`` (may this process
take traffic?). ``/healthz`` (liveness) lives in ``scoring.views``; ``/metrics`` in
``scoring.metrics``."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from scoring.services.health import readiness


@require_GET
def readyz(request):
    """200 when the database and broker answer and every active portfolio's champion
    is loaded; otherwise 503 with the failed checks named under ``failed``."""
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)
