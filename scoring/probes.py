"""Endpoints for the platform rather than for people: ``/healthz`` (is this process
alive?) and ``/readyz`` (may it take traffic?). ``/metrics`` lives in ``scoring.metrics``.

Anyone may ask (the orchestrator's probes send no credentials) and learns only the
status code and ``{"status": ...}``. The details (database and broker latencies,
errors, every active portfolio's name and champion) go to authorised callers only
(:func:`probe_details_allowed`): the platform's bearer token (``METRICS_BEARER_TOKEN``)
or a signed-in user who may view portfolios (the administrator role)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from scoring.services.health import liveness, readiness

# Who, signed in, may read the details of the probes and /metrics (the administrator role holds it).
PROBE_DETAILS_PERM = "scoring.view_portfolio"


def bearer_ok(request) -> bool:
    token = getattr(settings, "METRICS_BEARER_TOKEN", None)
    if not token:
        return False
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def probe_details_allowed(request) -> bool:
    if bearer_ok(request):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.has_perm(PROBE_DETAILS_PERM))


def _answer(request, ok: bool, body: dict) -> JsonResponse:
    shown = body if probe_details_allowed(request) else {"status": body.get("status", "ok" if ok else "error")}
    response = JsonResponse(shown, status=200 if ok else 503)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def healthz(request):
    """200 when the database and broker answer, else 503 (details for authorised callers)."""
    alive, body = liveness()
    return _answer(request, alive, body)


@require_GET
def readyz(request):
    """200 when the database and broker answer and every active portfolio's champion
    is loaded; otherwise 503 (authorised callers see the failed checks under ``failed``)."""
    ready, body = readiness()
    return _answer(request, ready, body)
