"""Recourse for a stored decision: "what would it take" to be approved.

The search is :func:`models.recourse.recourse_search` (pure); this module gives it

* the score's **own** model version and the **policy version the score was decided
  under** (cutoffs, points scale and strategy rules through ``policy_decide``, as real
  time, batch, what-if and replay decide), so a suggestion's decision is the one that
  score's policy would give, whatever is in force now;
* the features it may change, from the schema (``actionable``, see
  :func:`column_actionable`) and the spread of each number on the training sample
  (the version's monitoring reference); a CNN applicant's repayment history is kept
  exactly as it was scored;
* a check of every suggestion through the real scoring path (``decide_rows``, with
  explanations, as the what-if panel scores) and the import rules
  (``applicant_features_validate``): a suggestion that does not hold there is dropped,
  so what is shown is what the portfolio's scoring would answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.artifacts import ArtifactFormatError, ArtifactIntegrityError
from models.recourse import CategoricalSpec, FeatureSpec, NumericSpec, Recourse, column_actionable, nice_step
from models.recourse import recourse_search as search
from models.scaling import APPROVE
from scoring.inference import decider_load
from scoring.models import DatasetSchema, ModelVersion, Score
from scoring.services.datasets import PortfolioData, static_frame
from scoring.services.errors import ConflictError, public_error_text
from scoring.services.policy import Policy, policy_decide, policy_in_force, policy_of
from scoring.services.scoring import decide_rows, history_from_bytes, rule_history_facts

TARGET = (APPROVE,)
MAX_SUGGESTIONS = 5
RANGE_SPREADS = 3.0  # a number is searched within its training centre ± 3 spreads (and the schema's bounds)
NO_CHANGE = "No change within bounds: no combination of up to three actionable features reaches approve."


class RecourseError(ConflictError, ValueError):
    """Recourse cannot be computed for this score (a challenger's shadow score, an unloadable model)."""


def _numeric_profile(version: ModelVersion, name: str) -> tuple[float, float] | None:
    """(centre, spread) of a number on the version's training sample: the median and
    the 20-80 % range of the monitoring reference's decile edges."""
    profile = ((version.monitoring_reference or {}).get("features") or {}).get(name) or {}
    edges = [float(e) for e in profile.get("edges") or []]
    if not edges:
        return None
    centre = edges[len(edges) // 2]
    spread = edges[7] - edges[1] if len(edges) == 9 else edges[-1] - edges[0]
    return centre, spread


def recourse_specs(version: ModelVersion) -> list[FeatureSpec]:
    """The features the search may change for this version's applicants, with bounds,
    steps and spreads (see the module doc)."""
    specs: list[FeatureSpec] = []
    reference = ((version.monitoring_reference or {}).get("features")) or {}
    for column in version.schema.definition.get("columns", []):
        direction = column_actionable(column)
        if direction is None:
            continue
        name = column["name"]
        if column["role"] == DatasetSchema.ROLE_CATEGORICAL:
            values = column.get("categories") or (reference.get(name) or {}).get("categories") or []
            values = [str(v) for v in values if v not in (None, "", "__missing__")]
            if values:
                specs.append(CategoricalSpec(name=name, values=tuple(values)))
            continue
        integer = column.get("type") in ("integer", "boolean")
        profile = _numeric_profile(version, name)
        low, high = column.get("min"), column.get("max")
        if column.get("type") == "boolean":
            low, high = 0, 1
        if profile is None and (low is None or high is None):
            continue  # nothing says how far it may move
        centre, spread = profile if profile is not None else ((low + high) / 2, (high - low) / 10)
        if spread <= 0:
            spread = 1.0 if integer else max(abs(centre) * 0.1, 1e-6)
        lo = centre - RANGE_SPREADS * spread if low is None else max(low, centre - RANGE_SPREADS * spread)
        hi = centre + RANGE_SPREADS * spread if high is None else min(high, centre + RANGE_SPREADS * spread)
        if lo > hi:
            lo, hi = hi, lo
        step = float(column.get("step") or (1.0 if integer else nice_step(spread)))
        specs.append(NumericSpec(name=name, low=float(lo), high=float(hi), spread=float(spread), step=step,
                                 integer=integer, direction=direction, center=float(centre)))  # fmt: skip
    return specs


def _extend_to(spec: FeatureSpec, value: Any) -> FeatureSpec:
    """A number's range reaches the applicant's own value (a search starts from it)."""
    if not isinstance(spec, NumericSpec) or not isinstance(value, int | float) or isinstance(value, bool):
        return spec
    return NumericSpec(name=spec.name, low=min(spec.low, float(value)), high=max(spec.high, float(value)),
                       spread=spec.spread, step=spec.step, integer=spec.integer, direction=spec.direction,
                       center=spec.center)  # fmt: skip


@dataclass
class ScoreRecourse:
    """Recourse for one score: the search's answer, each suggestion confirmed by the real path."""

    score: Score
    version: ModelVersion
    policy: Policy
    result: Recourse
    suggestions: list[dict]
    immutable: list[str]

    @property
    def message(self) -> str:
        if self.result.already:
            return f"Already {self.score.decision}: nothing needs to change."
        if not self.suggestions:
            return NO_CHANGE
        return f"{len(self.suggestions)} change set(s) reach approve under the policy the score was decided under."


def _history_of(score: Score, version: ModelVersion) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not version.family.needs_history:
        return None, None
    if score.input_history is None:
        raise RecourseError(f"Score {score.pk} of a CNN has no stored history.")
    months = len(bytes(score.input_history)) // (3 * 4)  # float32 (months, 3)
    return history_from_bytes(score.input_history, months)


def _data(version: ModelVersion, rows: list[dict], history, mask) -> PortfolioData:
    n = len(rows)
    data = PortfolioData(
        applicant_ids=np.zeros(n, dtype=np.int64), external_ids=[""] * n,
        static=static_frame(version.schema, rows), features=rows,
    )  # fmt: skip
    if history is not None:
        data.history, data.history_mask = np.repeat(history, n, axis=0), np.repeat(mask, n, axis=0)
    return data


def batch_scorer(*, version: ModelVersion, policy: Policy, history=None, history_mask=None):
    """Rows → (points, decisions) of the version under ``policy``, the history held
    fixed: the model's log-odds (no explanation: the search scores hundreds of rows)
    through ``policy_decide``, the one deciding function."""
    decider = decider_load(version)

    def score(rows: list[dict]):
        data = _data(version, rows, history, history_mask)
        decisions = decider.decide(**data.model_inputs(version.kind), explain=False)
        outcome = policy_decide(
            policy, log_odds=decisions.log_odds, features=rows,
            history_facts=rule_history_facts(data.history, data.history_mask),
        )  # fmt: skip
        return outcome.score, outcome.decision

    return score


def score_recourse(*, score: Score, k: int = 3) -> ScoreRecourse:
    """Up to ``k`` smallest change sets of actionable features that take the stored
    decision to approve, under the score's model version and policy version."""
    from scoring.services.scoring import applicant_features_validate

    if score.is_shadow:
        raise RecourseError("A challenger's shadow score is not a decision: ask recourse for the champion's score.")
    k = max(1, min(int(k), MAX_SUGGESTIONS))
    version: ModelVersion = score.model_version
    portfolio = version.portfolio
    policy = policy_of(score.policy_version_id) if score.policy_version_id else policy_in_force(portfolio)
    history, mask = _history_of(score, version)
    row = dict(score.input_features)
    try:
        scorer = batch_scorer(version=version, policy=policy, history=history, history_mask=mask)
        specs = [_extend_to(s, row.get(s.name)) for s in recourse_specs(version)]
        result = search(row, specs, scorer, target=TARGET, k=k)
    except (OSError, ArtifactIntegrityError, ArtifactFormatError) as exc:  # artifact missing, altered, unreadable
        raise RecourseError(
            f"The artifact of model version {version.pk} cannot be loaded: {public_error_text(str(exc))}"
        ) from exc
    confirmed: list[dict] = []
    if result.suggestions:
        changed = [s.apply(row) for s in result.suggestions]
        _, real = decide_rows(version=version, data=_data(version, changed, history, mask), policy=policy)
        for suggestion, features, scored in zip(result.suggestions, changed, real, strict=True):
            _, problems = applicant_features_validate(portfolio=portfolio, features=features)
            if scored.decision not in TARGET or problems:
                continue  # the real path or the import rules disagree: not shown
            confirmed.append(
                {
                    "changes": [
                        {"feature": c.feature, "before": c.before, "after": c.after, "cost": c.cost}
                        for c in suggestion.changes
                    ],
                    "cost": suggestion.cost,
                    "pd": scored.pd,
                    "score": scored.score,
                    "decision": scored.decision,
                }
            )
    changeable = {spec.name for spec in specs}
    columns = version.schema.columns_with_role(DatasetSchema.ROLE_NUMERIC, DatasetSchema.ROLE_CATEGORICAL)
    immutable = [c["name"] for c in columns if c["name"] not in changeable]
    return ScoreRecourse(score=score, version=version, policy=policy, result=result, suggestions=confirmed,
                         immutable=immutable)  # fmt: skip
