"""Adverse-action notices: the printable statement of why an application was declined.

The principal reasons are those measured against the approval boundary (what the
applicant lacked compared with applicants at the approve cutoff, one statement per
cause; ``scoring.services.explanations.boundary_reasons``), preceded by the policy's
knock-out rules that fired. Producing a notice is audited (ids only, never PII).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from scoring.models import Score
from scoring.services.errors import ConflictError


class NoticeError(ConflictError):
    """Only a declined decision (not a shadow score) gets an adverse-action notice."""

    code = "no_notice"


def adverse_action_notice(*, score: Score, user, request=None) -> dict[str, Any]:
    """The content of the notice of a declined decision; audited as ``notice.produce``."""
    from scoring.audit import audit_record
    from scoring.services.explanations import score_explanation

    if score.decision != "decline" or score.is_shadow:
        raise NoticeError(f"Decision #{score.pk} is {score.decision}: only a decline gets an adverse-action notice.")
    explanation = score_explanation(score=score)
    rules = [r for r in score.reasons if r.get("feature", "").startswith("rule:") and r.get("action") == "knockout"]
    principal = explanation["boundary"]["principal"]
    notice = {
        "score": score,
        "produced_at": timezone.now(),
        "rules": rules,
        "reasons": principal,
        "points_short": explanation["boundary"]["points_short"],
        "cutoff": explanation["boundary"]["cutoff"],
        "policy": explanation["policy_version"],
    }
    audit_record(
        action="notice.produce", actor=user, request=request, portfolio_id=score.portfolio_id, object_type="score",
        object_ids=[score.pk],
        details={"applicant": score.applicant_id, "codes": [r["code"] for r in rules] + [r["code"] for r in principal],
                 "policy_version": score.policy_version_id},
    )  # fmt: skip
    return notice
