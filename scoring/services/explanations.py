"""The full explanation of a stored decision, read from the ``Score`` row: nothing is
recomputed, so it is the explanation given at the time, whatever model is champion
now."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.artifacts import ArtifactFormatError, ArtifactIntegrityError
from models.reasons import ValueLookup, history_facts
from scoring.inference import decider_load
from scoring.models import ModelVersion, Score
from scoring.services.datasets import static_frame
from scoring.services.errors import ConflictError, public_error_text
from scoring.services.scoring import history_from_bytes


class ExplanationError(ConflictError, ValueError):
    """The stored score cannot be explained (its model version's artifact is gone or altered)."""


def score_explanation(*, score: Score) -> dict[str, Any]:
    """Base value, the contribution of every input group (name, the applicant's value,
    log-odds, points; largest risk first) and the reasons with their texts.

    ``base_log_odds + sum(log_odds)`` is the calibrated log-odds of default of the
    stored PD. Points use the scale of the policy version the score was decided under
    (``policy_version`` says which), so ``base_points + sum(points)`` equals the stored
    score whatever policy is in force now.
    """
    from scoring.services.policy import policy_in_force, policy_of

    version: ModelVersion = score.model_version
    try:
        decider = decider_load(version)
    except (OSError, ValueError, ArtifactIntegrityError, ArtifactFormatError) as exc:  # missing, altered, unreadable
        raise ExplanationError(
            f"The artifact of model version {version.pk} cannot be loaded: {public_error_text(str(exc))}"
        ) from exc
    groups: list[str] = list(decider.groups_)
    if len(groups) != len(score.contributions):
        raise ExplanationError(
            f"Score {score.pk} has {len(score.contributions)} contributions; its model version has {len(groups)} groups."
        )
    static = static_frame(version.schema, [score.input_features])
    facts: dict = {}
    if version.family.needs_history and score.input_history is not None:
        months = len(bytes(score.input_history)) // (3 * 4)  # float32 (months, 3)
        history, mask = history_from_bytes(score.input_history, months)
        facts = history_facts(history, mask)
    policy = policy_of(score.policy_version_id) if score.policy_version_id else policy_in_force(version.portfolio)
    scale = policy.scale
    value_of = ValueLookup(static, facts)
    contributions = [
        {
            "group": group,
            "value": value_of(group, 0),
            "log_odds": float(log_odds),
            "points": round(float(scale.points(log_odds)), 4),
        }
        for group, log_odds in zip(groups, score.contributions, strict=True)
    ]
    contributions.sort(key=lambda c: -c["log_odds"])
    boundary = boundary_reasons(score=score, decider=decider, policy=policy, value_of=value_of, groups=groups)
    return {
        "score_id": score.pk,
        "applicant": score.applicant_id,
        "model_version": version.pk,
        "pd": score.pd,
        "score": score.score,
        "decision": score.decision,
        "base_log_odds": score.base_log_odds,
        "base_points": round(scale.base_points(score.base_log_odds), 4),
        "log_odds": score.base_log_odds + float(sum(score.contributions)),
        "scale": scale.to_dict(),
        "policy_version": {
            "id": score.policy_version_id,
            "version": policy.version if score.policy_version_id else None,
            "note": f"decided and explained under policy v{policy.version}"
            if score.policy_version_id
            else f"scored before policies were versioned; points on policy v{policy.version}, in force now",
        },
        "contributions": contributions,
        "reasons": score.reasons,
        "boundary": boundary,
        "created_at": score.created_at,
    }


REFERENCE_SCORES = 1000


def boundary_reference(version: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
    """Reference applicants for boundary reasons: the version's latest stored decisions
    (at most ``REFERENCE_SCORES``; contributions (m, G) and log-odds of default (m,)), from
    which ``boundary_points`` takes those nearest the cutoff. Real applicants of the
    portfolio, whatever the model family; the log-odds (not the points) are compared, so
    a change of points scale since does not move them."""
    rows = list(
        Score.objects.filter(model_version=version, is_shadow=False)
        .order_by("-created_at")
        .values_list("contributions", "pd")[:REFERENCE_SCORES]
    )
    if not rows:
        raise ExplanationError(f"Model version {version.pk} has no stored decisions to measure reasons against.")
    pd_ = np.clip(np.array([r[1] for r in rows], dtype=np.float64), 1e-15, 1 - 1e-15)
    return np.array([r[0] for r in rows], dtype=np.float64), np.log(pd_) - np.log1p(-pd_)


def boundary_reasons(*, score: Score, decider, policy, value_of, groups: list[str], k: int = 4) -> dict[str, Any]:
    """The principal reasons of a decision measured against the approval boundary: each
    group's cost in points against applicants at the approve cutoff (adding up exactly
    to ``points_short`` = cutoff - score), and the ``k`` largest costs as statements, one
    per cause (catalogue group), as an adverse-action notice lists them."""
    from models.reasons import boundary_points, format_value, numeric_medians, reason_key

    reference, reference_log_odds = boundary_reference(score.model_version)
    cutoff = policy.approve_min_score
    costs, _ = boundary_points(
        np.asarray([score.contributions]), np.asarray([score.score]), cutoff=cutoff, scale=policy.scale,
        reference=reference, reference_log_odds=reference_log_odds,
    )  # fmt: skip
    medians = numeric_medians(decider.model)
    integers = frozenset(c["name"] for c in score.model_version.schema.definition.get("columns", []) if c.get("type") == "integer")  # fmt: skip
    rows = []
    for g in np.argsort(-costs[0], kind="stable").tolist():
        group, value = groups[g], value_of(groups[g], 0)
        if value is not None and group in integers:
            value = round(value)
        entry = policy.catalogue.get(reason_key(group, value, medians)) or policy.catalogue.get(group) or {}
        rows.append({"group": group, "points": float(costs[0, g]), "code": entry.get("code", ""),
                     "cause": entry.get("group", group), "value": value,
                     "text": entry.get("text", group).format(value=format_value(value, integer=group in integers))})  # fmt: skip
    principal: list[dict[str, Any]] = []
    causes: set[str] = set()
    for row in rows:
        if row["points"] <= 0 or len(principal) == k:
            break
        if row["cause"] not in causes:
            causes.add(row["cause"])
            principal.append(row)
    return {"cutoff": cutoff, "points_short": cutoff - score.score, "costs": rows, "principal": principal}
