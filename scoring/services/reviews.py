"""The review queue for "refer": a person decides what the policy referred.

A *case* is an applicant's latest decision when it is a refer that no person has
decided yet (``scoring.selectors.review_queue``). An underwriter of the portfolio
(the role holding the ``review_portfolio`` grant, ``scoring/roles.py``) **takes** a
case (it is then theirs alone: a conditional update, so two underwriters never hold
one case), may **release** it, and **decides** it: approve or decline, with a reason.
The final decision, who and when, are stored in a :class:`ReviewDecision` beside the
score; the score row itself never changes.

The one rule of who may act, checked here for every entry point (API, portal, admin,
command): the caller holds the review grant on the case's portfolio and did not
request the decision under review (four eyes: nobody reviews an application they
scored). Only the person holding a case decides or releases it. Every attempt, done
or refused, is audited in the hash chain with the case's state before and after.

An *override* is a final decision that differs from the model's own, i.e. the one its
points give against the cutoffs before strategy rules (``ReviewDecision.model_decision``):
declining an applicant the points approve but a refer rule referred. Where the points
themselves fall in the refer band the model has no decision to override. Every decided
case, either way, is *resolved by review*.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from models.scaling import APPROVE, DECLINE, REFER
from scoring.models import ReviewDecision, Score
from scoring.services.errors import ConflictError, ForbiddenError, ServiceError

REASON_MIN_CHARS = 10
REASON_MAX_CHARS = 1000
FINAL_DECISIONS = (APPROVE, DECLINE)


class ReviewInvalid(ServiceError):
    """The review decision is not valid (a decision other than approve or decline, a missing reason)."""

    code = "invalid_review"


class ReviewForbidden(ForbiddenError):
    """Only an underwriter of the portfolio who did not request the decision may review it."""

    code = "review_forbidden"


class ReviewConflict(ConflictError):
    """The case's state does not allow this (taken by someone else, decided, no longer in the queue)."""

    code = "review_conflict"


def review_may(user, portfolio_id: int) -> bool:
    """Whether ``user`` holds the review grant on the portfolio (the queue's navigation and
    buttons ask this; the services check the whole rule, ``_check_reviewer``)."""
    from scoring.permissions import has_portfolio_perm
    from scoring.roles import REVIEW

    return bool(user) and user.is_authenticated and has_portfolio_perm(user, portfolio_id, REVIEW)


def _check_reviewer(user, score: Score) -> None:
    """THE rule of who reviews a case (every entry point comes through here)."""
    if not review_may(user, score.portfolio_id):
        raise ReviewForbidden("Only an underwriter of this portfolio can review its referred applications.")
    if score.requested_by_id is not None and score.requested_by_id == user.pk:
        raise ReviewForbidden("Four eyes: the person who requested a decision cannot review it.")


def model_decision_of(score: Score) -> str:
    """The model's own decision: the score's points against the cutoffs of the policy it
    was decided under, before strategy rules."""
    from scoring.services.policy import policy_in_force, policy_of

    policy = policy_of(score.policy_version_id) if score.policy_version_id else policy_in_force(score.portfolio)
    if score.score >= policy.approve_min_score:
        return APPROVE
    return DECLINE if score.score < policy.decline_below_score else REFER


def _state(review: ReviewDecision | None) -> dict[str, Any]:
    """A case as the audit log keeps it (ids, never the applicant's data)."""
    if review is None:
        return {"state": ReviewDecision.STATE_OPEN, "assigned_to": None, "final_decision": None}
    return {
        "state": review.state,
        "assigned_to": review.assigned_to_id,
        "final_decision": review.decision or None,
        "decided_by": review.decided_by_id,
        "override": review.is_override if review.decided_at else None,
    }


def _case(score: Score) -> Score:
    """The score, locked (PostgreSQL) for the transaction, if it is still a case of the queue."""
    from scoring.selectors import review_cases

    locked = Score.objects.select_for_update(of=("self",)).select_related("portfolio").filter(pk=score.pk).first()
    if locked is None:
        raise ReviewConflict(f"Decision #{score.pk} no longer exists.")
    if not review_cases().filter(pk=locked.pk).exists():
        review = ReviewDecision.objects.filter(score=locked).first()
        if review is not None and review.decided_at is not None:
            raise ReviewConflict(f"Decision #{locked.pk} was decided by review already.")
        raise ReviewConflict(
            f"Decision #{locked.pk} is not in the review queue: not a refer, decided, or not the applicant's latest."
        )
    return locked


def _audited(action: str, score: Score, user, request, work):
    """Run ``work`` in a transaction; audit it with the case before and after, or the refusal."""
    from scoring.audit import audit_record

    event = {"action": action, "actor": user, "request": request, "portfolio_id": score.portfolio_id,
             "object_type": "score", "object_ids": [score.pk]}  # fmt: skip
    try:
        with transaction.atomic():
            locked = _case(score)
            _check_reviewer(user, locked)
            before = _state(ReviewDecision.objects.filter(score=locked).first())
            review, details = work(locked)
            audit_record(**event, details={"review": review.pk, "applicant": locked.applicant_id,
                                           "model_version": locked.model_version_id, "before": before,
                                           "after": _state(review), **details})  # fmt: skip
    except ServiceError as error:
        audit_record(**event, outcome="denied", details={"reason": error.message[:500]})
        raise
    return review


def _review_row(score: Score) -> ReviewDecision:
    defaults = {"portfolio_id": score.portfolio_id, "applicant_id": score.applicant_id,
                "model_version_id": score.model_version_id, "input_hash": score.input_hash,
                "model_decision": model_decision_of(score)}  # fmt: skip
    try:
        with transaction.atomic():
            return ReviewDecision.objects.get_or_create(score=score, defaults=defaults)[0]
    except IntegrityError:  # another taker created it between our read and insert
        return ReviewDecision.objects.get(score=score)


def review_take(*, score: Score, user, request=None) -> ReviewDecision:
    """Assign the case to ``user``. Refused while someone else holds it; taking one's own
    case again changes nothing."""

    def work(locked: Score):
        review = _review_row(locked)
        now = timezone.now()
        # The conditional update is the lock: of two takers, exactly one changes the row.
        taken = ReviewDecision.objects.filter(pk=review.pk, assigned_to__isnull=True, decided_at__isnull=True).update(
            assigned_to=user, taken_at=now
        )
        review.refresh_from_db()
        if not taken and review.assigned_to_id != user.pk:
            raise ReviewConflict(f"Decision #{locked.pk} is being reviewed by {review.assigned_to} already.")
        return review, {}

    return _audited("review.take", score, user, request, work)


def review_release(*, score: Score, user, request=None) -> ReviewDecision:
    """Give a taken case back to the queue (only its holder can)."""

    def work(locked: Score):
        review = ReviewDecision.objects.filter(score=locked).first()
        released = review is not None and ReviewDecision.objects.filter(
            pk=review.pk, assigned_to=user, decided_at__isnull=True
        ).update(assigned_to=None, taken_at=None)
        if not released or review is None:
            raise ReviewConflict(f"Decision #{locked.pk} is not taken by you: only its holder can release it.")
        review.refresh_from_db()
        return review, {}

    return _audited("review.release", score, user, request, work)


def review_reason_clean(reason: Any) -> str:
    text = " ".join(str(reason or "").split())
    if len(text) < REASON_MIN_CHARS:
        raise ReviewInvalid(
            f"Give the reason for the decision ({REASON_MIN_CHARS} characters at least).",
            details={"reason": [f"at least {REASON_MIN_CHARS} characters"]},
        )
    if len(text) > REASON_MAX_CHARS:
        raise ReviewInvalid(
            f"The reason is longer than {REASON_MAX_CHARS} characters.",
            details={"reason": [f"at most {REASON_MAX_CHARS} characters"]},
        )
    return text


def review_decide(*, score: Score, user, decision: str, reason: str, request=None) -> ReviewDecision:
    """The final decision of a case the caller holds: ``approve`` or ``decline``, with a
    reason (REASON_MIN_CHARS to REASON_MAX_CHARS). Stored beside the model's decision,
    audited, and final. Returns the stored :class:`ReviewDecision` (the one function a
    decision event hooks into)."""

    def work(locked: Score):
        # Checked after who may review (``_audited``): an outsider learns nothing from the rules of the form.
        if decision not in FINAL_DECISIONS:
            raise ReviewInvalid("A review decides approve or decline.", details={"decision": ["approve or decline"]})
        text = review_reason_clean(reason)
        review = ReviewDecision.objects.filter(score=locked).first()
        if review is None or review.assigned_to_id != user.pk:
            raise ReviewConflict(f"Take decision #{locked.pk} before deciding it (it is not assigned to you).")
        decided = ReviewDecision.objects.filter(pk=review.pk, assigned_to=user, decided_at__isnull=True).update(
            decision=decision, reason=text, decided_by=user, decided_at=timezone.now(),
            is_override=review.model_decision in FINAL_DECISIONS and decision != review.model_decision,
        )  # fmt: skip
        if not decided:
            raise ReviewConflict(f"Decision #{locked.pk} was decided by review already.")
        review.refresh_from_db()
        from scoring.services.decision_events import decision_final

        # The case's decision is final now: announced to the portfolio's webhooks once this commits.
        decision_final(score=locked, decision=decision, source="review", decided_by=user)
        return review, {"model_decision": review.model_decision, "decision": locked.decision,
                        "final_decision": decision, "reason": text}  # fmt: skip

    return _audited("review.decide", score, user, request, work)
