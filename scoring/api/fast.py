"""``POST /api/v1/portfolios/{id}/score/`` at the framework's floor.

The DRF action (``PortfolioViewSet.score``) stays the definition of the endpoint:
its contract, its OpenAPI schema, its errors. This plain Django view in front of
it answers the common case, a token-authenticated JSON request that will be
scored, with the same body and status, from the per-process caches of
``scoring.caches`` (one query for token, user, roles, grants, portfolio,
champion and reason texts, none of it stale: the cache version is read on every
request). Anything else (session auth, a bad or unknown token, a body the lean
checks do not recognise, an unknown applicant, no champion, a refused throttle,
invalid new-applicant data) is handed to the DRF view untouched, before anything
is written, so every error keeps exactly the format and status it always had.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from scoring.api.errors import api_exception_handler
from scoring.caches import cache_view
from scoring.roles import SCORE, VIEW
from scoring.services.realtime import (
    realtime_applicant,
    realtime_champion,
    realtime_permitted,
    realtime_portfolio,
    realtime_score,
    realtime_token,
)
from scoring.services.scoring import ScoringError

_ACCEPTED = {"*/*", "application/*", "application/json"}
_LOOKUPS = ("applicant_id", "external_id", "applicant")
_MAX_ID = 2**63 - 1
_renderer = JSONRenderer()


def _token_key(request: HttpRequest) -> str | None:
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(parts) != 2 or parts[0].lower() != "token" or not parts[1].isascii():
        return None
    return parts[1]


def _accepts_json(request: HttpRequest) -> bool:
    """The client takes JSON, which DRF's negotiation would pick too (no ?format=,
    no preference for the browsable API's HTML)."""
    if request.GET:
        return False
    accept = request.META.get("HTTP_ACCEPT", "")
    if not accept:
        return True
    return all(part.split(";")[0].strip() in _ACCEPTED for part in accept.split(","))


def _strict(constant: str):
    raise ValueError(constant)  # NaN and Infinity: DRF's strict JSON parser refuses them


def _is_id(value) -> bool:
    return type(value) is int and 0 <= value <= _MAX_ID


def _plain_text(value) -> bool:
    """What ``serializers.CharField`` keeps unchanged: non-blank, no surrounding
    white space, no NUL, no lone surrogates."""
    if not isinstance(value, str) or not value or value != value.strip() or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def score_request_of(request: HttpRequest) -> dict | None:
    """The body as ``ScoreRequestSerializer`` would validate it, when it is plainly
    valid; None for anything the serializer should judge (it will answer the 400)."""
    if request.content_type != "application/json":
        return None
    try:
        data = json.loads(request.body, parse_constant=_strict)
    except Exception:
        return None
    if not isinstance(data, dict) or sum(k in data for k in _LOOKUPS) != 1:
        return None
    out = {"top_reasons": data.get("top_reasons", 4)}
    if type(out["top_reasons"]) is not int or not 1 <= out["top_reasons"] <= 20:
        return None
    if "applicant_id" in data:
        if not _is_id(data["applicant_id"]):
            return None
        out["applicant_id"] = data["applicant_id"]
    elif "external_id" in data:
        if not _plain_text(data["external_id"]):
            return None
        out["external_id"] = data["external_id"]
    else:
        if not isinstance(data["applicant"], dict):
            return None
        out["applicant"] = data["applicant"]
    if "history" in data:
        if not isinstance(data["history"], list) or not all(isinstance(m, dict) for m in data["history"]):
            return None
        out["history"] = data["history"]
    return out


_created_at = serializers.DateTimeField()  # DRF's own rendering of a time (ISO 8601, Z for UTC)


def score_body(score) -> dict:
    """``ScoreSerializer(score).data`` without building a serializer per request
    (DRF copies its declared fields each time: ~1 ms). A test compares both."""
    return {
        "id": score.pk,
        "portfolio": score.portfolio_id,
        "applicant": score.applicant_id,
        "run": score.run_id,
        "model_version": score.model_version_id,
        "model_version_number": score.model_version.version,  # the caller's version object: no query
        "policy_version": score.policy_version_id,
        "is_shadow": score.is_shadow,
        "pd": float(score.pd),
        "score": float(score.score),
        "decision": str(score.decision),
        "base_log_odds": float(score.base_log_odds),
        "reasons": [
            {
                "feature": str(r["feature"]),
                "code": str(r["code"]),
                "text": str(r["text"]),
                "value": r["value"],
                "log_odds": float(r["log_odds"]),
                "points": float(r["points"]),
            }
            for r in score.reasons
        ],
        "input_hash": score.input_hash,
        "created_at": _created_at.to_representation(score.created_at),
    }


def _throttled(request: HttpRequest, view) -> bool:
    return any(not throttle.allow_request(request, view) for throttle in view.get_throttles())


def _error(exc: Exception, request: HttpRequest) -> HttpResponse:
    """An unexpected failure, answered as the DRF view would (the API's one error format)."""
    response = api_exception_handler(exc, {"request": request})
    if response is None:  # DEBUG: the developer sees Django's page
        raise exc
    response.accepted_renderer = _renderer
    response.accepted_media_type = "application/json"
    response.renderer_context = {}  # type: ignore[attr-defined]  # set by DRF views before render()
    return response.render()


def score_view(drf_view: Callable, viewset) -> Callable:
    """The lean view in front of ``drf_view`` (the router's ``portfolio-score``)."""
    throttles = viewset()  # only its throttle classes are used: they read the request, never the view

    @csrf_exempt
    def portfolio_score(request: HttpRequest, pk: int) -> HttpResponse:
        def full() -> HttpResponse:
            return drf_view(request, pk=str(pk))

        key = _token_key(request)
        if request.method != "POST" or key is None or not _accepts_json(request):
            return full()
        body = score_request_of(request)
        if body is None:
            return full()
        cache = cache_view()
        token = realtime_token(cache, key)
        if token is None:
            return full()
        portfolio = realtime_portfolio(cache, pk)
        if portfolio is None or not realtime_permitted(cache, token, pk, VIEW):
            return full()
        if not realtime_permitted(cache, token, pk, SCORE):
            return full()
        version = realtime_champion(cache, portfolio)
        if version is None:
            return full()
        record = None
        if "applicant" not in body:
            record = realtime_applicant(
                portfolio_id=pk, applicant_id=body.get("applicant_id"), external_id=body.get("external_id")
            )
            if record is None:
                return full()
        request.user = token.user  # the throttle, the audit event and the middleware read it
        if _throttled(request, throttles):
            return full()
        try:
            score = realtime_score(
                cache=cache, portfolio=portfolio, version=version, user=token.user, record=record,
                features=body.get("applicant"), history=body.get("history"), top_k=body["top_reasons"],
                request=request,
            )  # fmt: skip
        except ScoringError:
            return full()  # invalid new-applicant data: nothing was written; the DRF view lists the problems
        except Exception as exc:
            return _error(exc, request)
        response = HttpResponse(_renderer.render(score_body(score)), status=201, content_type="application/json")
        response["Allow"] = "POST, OPTIONS"
        response["Vary"] = "Accept"
        return response

    # The lean view stands for the DRF action: whatever inspects the URL table (the
    # permission test generated from the schema, resolve() in tools) sees the viewset
    # and action that define the endpoint and its permission gate.
    for attribute in ("cls", "actions", "initkwargs"):
        if hasattr(drf_view, attribute):
            setattr(portfolio_score, attribute, getattr(drf_view, attribute))
    return portfolio_score
