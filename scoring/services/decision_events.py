"""Decision events: each final decision is announced to the portfolio's webhook
endpoints (``scoring.services.webhooks`` signs and sends them).

A decision is final when it is approve or decline: a real-time score the model (and
the policy's rules) decided so (``source="model"``, called by ``score_record``), or a
referred application an underwriter decided (``source="review"``, called by the review
service). Refer is not final, so it sends nothing. Batch rescoring sends nothing
either: a nightly run re-measures the book, it does not decide new applications.

:func:`decision_final` runs inside the caller's transaction: the outbox rows
(``WebhookDelivery``) commit or roll back with the decision, and the delivery tasks
are sent only once it has committed, so a rolled-back score announces nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from models.scaling import APPROVE, DECLINE
from scoring.caches import CacheView
from scoring.models import Applicant, PolicyVersion, Score, WebhookDelivery, WebhookEndpoint
from scoring.services.errors import ServiceError

FINAL_DECISIONS = frozenset({APPROVE, DECLINE})
SOURCES = frozenset({"model", "review"})
EVENT = "decision.final"


class DecisionEventError(ServiceError):
    """A decision event that cannot be: an unknown source, or a non-final decision given as final."""

    code = "invalid"
    status = 400


def decision_payload(
    *, score: Score, decision: str, source: str, event_id: uuid.UUID, decided_at: datetime, decided_by=None
) -> dict:
    """What a receiver is told: ids, the decision and the numbers behind it; no personal
    data beyond the applicant's external id (the lender's own reference)."""
    external_id = (
        Applicant.objects.filter(pk=score.applicant_id).values_list("external_id", flat=True).first()
        if score.applicant_id is not None
        else None
    )
    policy = (
        PolicyVersion.objects.filter(pk=score.policy_version_id).values_list("version", flat=True).first()
        if score.policy_version_id is not None
        else None
    )
    return {
        "event": EVENT,
        "event_id": str(event_id),
        "score_id": score.pk,
        "applicant_external_id": external_id,
        "portfolio_id": score.portfolio_id,
        "decision": decision,
        "model_decision": score.decision,
        "pd": score.pd,
        "points": score.score,
        "policy_version": policy,
        "model_version": score.model_version.version,
        "source": source,
        "decided_by": getattr(decided_by, "pk", None),
        "decided_at": decided_at.isoformat(),
    }


def decision_endpoints(*, score: Score, decision: str, source: str, cache: CacheView | None = None) -> tuple[int, ...]:
    """The ids of the endpoints a decision is announced to: none for a refer (final only
    once an underwriter decides), a batch run's or a challenger's shadow score (no new
    decision), or a portfolio without active endpoints."""
    if decision not in FINAL_DECISIONS or score.is_shadow or score.run_id is not None:
        return ()

    def load() -> tuple[int, ...]:
        return tuple(
            WebhookEndpoint.objects.filter(portfolio_id=score.portfolio_id, active=True).values_list("id", flat=True)
        )

    return load() if cache is None else (cache.get("webhooks", score.portfolio_id, load) or ())


def decision_final(
    *, score: Score, decision: str, source: str, decided_by=None, cache: CacheView | None = None
) -> list[WebhookDelivery]:
    """Announce a final decision on ``score`` to every active endpoint of its portfolio:
    one delivery row each (sharing one event id), sent once the caller's transaction
    commits. ``decision`` is the final one (for a review, the underwriter's; the model's
    stays ``score.decision``). A refer returns [] and sends nothing.

    Call it inside the transaction that stores the decision (``score_record`` does, and
    so should the review service): rolled back with it, nothing is sent. ``cache``: the
    real-time request's view of the process cache, which holds the portfolio's active
    endpoints (an endpoint's save invalidates it), so a decision with none costs no query."""
    if source not in SOURCES:
        raise DecisionEventError(f"Unknown decision source {source!r}; known: {', '.join(sorted(SOURCES))}.")
    if decision not in FINAL_DECISIONS and source == "review":
        raise DecisionEventError(f"A review decides approve or decline, not {decision!r}.")
    endpoints = decision_endpoints(score=score, decision=decision, source=source, cache=cache)
    if not endpoints:
        return []
    event_id = uuid.uuid4()
    decided_at = timezone.now() if source == "review" or score.created_at is None else score.created_at
    payload = decision_payload(score=score, decision=decision, source=source, event_id=event_id,
                               decided_at=decided_at, decided_by=decided_by)  # fmt: skip
    now = timezone.now()
    with transaction.atomic():
        deliveries = WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    event_id=event_id,
                    portfolio_id=score.portfolio_id,
                    endpoint_id=endpoint_id,
                    score=score,
                    payload=payload,
                    next_attempt_at=now,
                )
                for endpoint_id in endpoints
            ]
        )
    from scoring.services.webhooks import webhook_deliveries_enqueue

    # bulk_create sets primary keys on PostgreSQL and SQLite (RETURNING).
    webhook_deliveries_enqueue([d.pk for d in deliveries])
    return deliveries
