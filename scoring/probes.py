"""Endpoints for the platform rather than for people: ``/healthz`` (is this process
alive?) and ``/readyz`` (may it take traffic?). ``/metrics`` lives in ``scoring.metrics``."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from scoring.services.health import liveness, readiness


@require_GET
def healthz(request):
    """Database and broker status as JSON; 503 when either is down."""
    alive, body = liveness()
    return JsonResponse(body, status=200 if alive else 503)


@require_GET
def readyz(request):
    """200 when the database and broker answer and every active portfolio's champion
    is loaded; otherwise 503 with the failed checks named under ``failed``."""
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)
