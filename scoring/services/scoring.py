"""Scoring: decisions with reasons, in real time and by chunks of a batch run.

Every score row stores the model version, the exact input (features as stored and
the history array the model saw) with its hash, the PD, points, decision, the top
reasons and the full contribution vector, so ``replay_score`` can recompute it.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.reasons import Decisions, ValueLookup, format_value, history_facts, numeric_medians, reason_key, top_reasons
from scoring.inference import decider_load
from scoring.metrics import ExplanationTimer, scores_written
from scoring.models import ModelVersion, Portfolio, Score
from scoring.services.datasets import PortfolioData
from scoring.services.errors import ConflictError
from scoring.services.policy import Policy, policy_decide, policy_in_force

TOP_REASONS = 4
SCORABLE = (ModelVersion.STATUS_APPROVED, ModelVersion.STATUS_CHAMPION)


class ScoringError(ConflictError, ValueError):
    """Scoring is not possible (no champion, an unapproved model, bad input)."""


def history_bytes(history: np.ndarray | None, mask: np.ndarray | None, row: int) -> bytes | None:
    if history is None:
        return None
    values = history[row].astype(np.float32, copy=True)
    if mask is not None:
        values[~mask[row]] = np.nan
    return values.tobytes()


def history_from_bytes(data: bytes | None, months: int) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    if data is None:
        return None, None
    values = np.frombuffer(bytes(data), dtype=np.float32).reshape(months, 3).copy()
    mask = np.asarray(np.isfinite(values).all(axis=1))
    values[~mask] = 0.0
    return values[None], mask[None]


def features_json(features: dict) -> str:
    """The canonical JSON of an input's features: what ``input_hash`` digests (and
    what a batch writes, so each row is serialised once)."""
    return json.dumps(features, sort_keys=True, default=str)


def input_hash(version_id: int, features: dict | str, history: bytes | None) -> str:
    """SHA-256 of the model version, the features (a dict, or its ``features_json``)
    and the history bytes: replay recomputes it to show the input is the one scored."""
    digest = hashlib.sha256(f"{version_id}:".encode())
    digest.update((features if isinstance(features, str) else features_json(features)).encode())
    if history is not None:
        digest.update(history)
    return digest.hexdigest()


@dataclass
class ScoredRow:
    pd: float
    score: float
    decision: str
    base_log_odds: float
    reasons: list[dict]
    contributions: list[float]
    policy_version_id: int | None = None


# Rule inputs named after the history facts the reasons quote.
_HISTORY_FACT_INPUTS = {
    "late_recent": "history.late_last_6m",
    "late_earlier": "history.late_earlier",
    "months_observed": "history.months_observed",
}


def rule_history_facts(history: np.ndarray | None, history_mask: np.ndarray | None) -> dict[str, Any]:
    """The history facts strategy rules read, under their rule-input names."""
    facts = history_facts(history, history_mask)
    return {_HISTORY_FACT_INPUTS[k]: v for k, v in facts.items() if k in _HISTORY_FACT_INPUTS}


def _rule_reason(hit: dict) -> dict:
    """A fired strategy rule, in the shape of a reason (it has no model contribution)."""
    return {"feature": f"rule:{hit['code']}", "code": hit["code"], "text": hit["text"], "action": hit["action"],
            "value": None, "log_odds": 0.0, "points": 0.0}  # fmt: skip


def _humanise(name: str) -> str:
    return name.replace("_", " ").replace(".", " ").replace(":", " ").strip().capitalize()


def _integer_columns(schema) -> frozenset[str]:
    return frozenset(c["name"] for c in schema.definition.get("columns", []) if c.get("type") == "integer")


def rows_from_decisions(
    decisions: Decisions,
    data: PortfolioData,
    *,
    version: ModelVersion,
    policy: Policy,
    features: list[dict] | None = None,
    top_k: int = TOP_REASONS,
) -> list[ScoredRow]:
    """Per row: PD, score and decision under ``policy`` (``policy_decide``, the one rule
    for every path), the fired rules and the top model reasons (raising risk most), the
    contributions. ``features``: the stored feature dicts the rules read (``data.features``
    by default)."""
    assert decisions.contributions is not None
    facts = history_facts(data.history, data.history_mask)
    outcome = policy_decide(
        policy,
        log_odds=decisions.log_odds,
        features=features if features is not None else data.features,
        history_facts={_HISTORY_FACT_INPUTS[k]: v for k, v in facts.items() if k in _HISTORY_FACT_INPUTS},
    )
    catalogue = policy.catalogue
    value_of = ValueLookup(data.static, facts)
    medians = numeric_medians(decider_load(version).model)  # cached: the decider decide_rows used
    integers = _integer_columns(version.schema)
    tops = top_reasons(decisions.contributions, decisions.groups, k=top_k)
    # Points of every contribution at once (one numpy call, not one per reason).
    points = np.round(policy.scale.points(decisions.contributions), 4).tolist()
    contributions = np.round(decisions.contributions, 8).tolist()
    base = float(decisions.base_log_odds)
    rows = []
    for i, top in enumerate(tops):
        reasons = [_rule_reason(hit) for hit in outcome.rule_hits[i]]
        for g, log_odds in top:
            group = decisions.groups[g]
            value = value_of(group, i)
            if value is not None and group in integers:
                value = round(value)  # an integer column read through a float frame (NaN elsewhere)
            key = reason_key(group, value, medians)
            entry = catalogue.get(key) or catalogue.get(group) or {"code": "", "text": _humanise(group)}
            reasons.append(
                {
                    "feature": group,
                    "code": entry["code"],
                    "text": entry["text"].format(value=format_value(value, integer=group in integers)),
                    "value": value,
                    "log_odds": round(log_odds, 8),
                    "points": points[i][g],
                }
            )
        rows.append(
            ScoredRow(
                pd=outcome.pd[i],
                score=outcome.score[i],
                decision=outcome.decision[i],
                base_log_odds=base,
                reasons=reasons,
                contributions=contributions[i],
                policy_version_id=policy.id,
            )
        )
    return rows


def decide_rows(
    *,
    version: ModelVersion,
    data: PortfolioData,
    top_k: int = TOP_REASONS,
    mode: str = "realtime",
    policy: Policy | None = None,
    features: list[dict] | None = None,
) -> tuple[Decisions, list[ScoredRow]]:
    """The model's contributions and the decisions under ``policy`` (by default the one
    in force for the version's portfolio)."""
    if policy is None:
        policy = policy_in_force(version.portfolio)
    decider = decider_load(version)
    with ExplanationTimer(version.kind, mode):  # mode: realtime or batch, a label of /metrics
        decisions = decider.decide(**data.model_inputs(version.kind))
    return decisions, rows_from_decisions(
        decisions, data, version=version, policy=policy, features=features, top_k=top_k
    )


def score_values(
    *,
    version: ModelVersion,
    data: PortfolioData,
    features: list[dict],
    rows: list[ScoredRow],
    run_id: int | None = None,
    is_shadow: bool = False,
    requested_by_id: int | None = None,
    applicant_ids: list[int | None] | None = None,
) -> list[dict]:
    """The field values of each row's ``Score`` (plain dicts: a batch chunk writes
    thousands by COPY and needs no model instances)."""
    is_cnn = version.family.needs_history
    ids = applicant_ids if applicant_ids is not None else data.applicant_ids.tolist()
    out = []
    for i, row in enumerate(rows):
        history = history_bytes(data.history, data.history_mask, i) if is_cnn else None
        canonical = features_json(features[i])
        out.append(
            {
                "portfolio_id": version.portfolio_id,
                "applicant_id": ids[i],
                "run_id": run_id,
                "model_version_id": version.pk,
                "is_shadow": is_shadow,
                "pd": row.pd,
                "score": row.score,
                "decision": row.decision,
                "base_log_odds": row.base_log_odds,
                "reasons": row.reasons,
                "contributions": row.contributions,
                "input_features": features[i],
                "input_history": history,
                "input_hash": input_hash(version.pk, canonical, history),
                "policy_version_id": row.policy_version_id,
                "requested_by_id": requested_by_id,
                "input_features_json": canonical,
            }
        )
    return out


def score_from_values(values: dict) -> Score:
    """An unsaved ``Score`` from one of ``score_values``' dicts (its features' JSON text
    is for COPY only: the model field holds the dict)."""
    return Score(**{k: v for k, v in values.items() if k != "input_features_json"})


def score_objects(*, requested_by=None, **kwargs) -> list[Score]:
    """Unsaved ``Score`` rows (see ``score_values``)."""
    return [score_from_values(v) for v in score_values(requested_by_id=getattr(requested_by, "pk", None), **kwargs)]


def scorable_version(*, portfolio: Portfolio, model_version: ModelVersion | None = None) -> ModelVersion:
    """The champion, or the named version if it is approved (four eyes: nothing else scores)."""
    if model_version is None:
        # The registry's bulky JSON (metrics, training progress, monitoring reference)
        # is not needed to score, and decoding it costs a real-time request a millisecond.
        version = (
            ModelVersion.objects.filter(portfolio=portfolio, status=ModelVersion.STATUS_CHAMPION)
            .defer("metrics", "baseline_metrics", "progress", "monitoring_reference", "hyperparameters")
            .first()
        )
        if version is None:
            raise ScoringError(f"{portfolio} has no champion model: approve and promote one first.")
        version.portfolio = portfolio  # the caller's row: the decider reads its policy without a query
        return version
    if model_version.portfolio_id != portfolio.pk:
        raise ScoringError("That model version belongs to another portfolio.")
    if model_version.status not in SCORABLE:
        raise ScoringError(
            f"Model version {model_version.version} is {model_version.status}: only approved models score."
        )
    return model_version


def applicant_features_validate(*, portfolio: Portfolio, features: dict) -> tuple[dict, list[dict]]:
    """Validate one new applicant's data with the import rules of the portfolio's schema.
    Returns (stored-form features, problems); problems use the import report's format."""
    import pandas as pd

    from models.coltypes import TYPES
    from scoring.services.ingestion.validation import ChunkValidator, FileSpec, ImportReport, spec_for_applicants

    schema = portfolio.schema
    full = spec_for_applicants(schema)
    model_roles = (schema.ROLE_NUMERIC, schema.ROLE_CATEGORICAL)
    # Model features are required; other declared columns are checked when given.
    fields = tuple(f for f in full.fields if f.role in model_roles or f.name in features)
    spec = FileSpec(kind="applicants", fields=fields, optional=full.optional)
    report = ImportReport(cap=100)
    validator = ChunkValidator(spec, report)
    unknown = sorted(set(features) - {f.name for f in full.fields} - set(full.optional))
    columns = [f.name for f in fields]
    validator.header_check(columns + unknown)
    raw = {name: ("" if features.get(name) is None else str(features.get(name))) for name in columns}
    chunk = validator.validate(0, pd.DataFrame([raw], columns=columns, dtype=str))
    problems = [{k: v for k, v in p.items() if k != "row"} for p in report.errors]
    if problems:
        return {}, problems
    stored = {}
    for f in fields:
        if f.role in model_roles:
            value = chunk.values[f.name].iloc[0]
            storage = TYPES[f.type].storage
            if storage in ("integer", "number"):
                stored[f.name] = None if pd.isna(value) else (int(value) if storage == "integer" else float(value))
            else:
                stored[f.name] = value or None
    return stored, []


def score_realtime(
    *,
    portfolio: Portfolio,
    requested_by=None,
    applicant=None,
    features: dict | None = None,
    history: list[dict] | None = None,
    top_k: int = TOP_REASONS,
) -> Score:
    """Score one applicant with the champion: a stored applicant, or new data
    (validated as an import would be; nothing but the score row is saved)."""
    from scoring.services.datasets import portfolio_data_of

    version = scorable_version(portfolio=portfolio)
    if applicant is not None:
        data = portfolio_data_of(
            portfolio=portfolio,
            records=[(applicant.pk, applicant.external_id, applicant.features)],
            with_history=version.family.needs_history,
        )
        stored = [applicant.features]
        ids: list[int | None] = [applicant.pk]
    else:
        if features is None:
            raise ScoringError("Give an applicant id or the applicant's data.")
        data, clean = _new_applicant_data(portfolio=portfolio, version=version, features=features, history=history)
        stored, ids = [clean], [applicant_from_score_store(portfolio=portfolio, features=features, clean=clean)]
    _, rows = decide_rows(version=version, data=data, top_k=top_k)
    (score,) = score_objects(
        version=version, data=data, features=stored, rows=rows, requested_by=requested_by, applicant_ids=ids
    )
    return score_record(score=score, version=version, requested_by=requested_by)


def score_record(*, score: Score, version: ModelVersion, requested_by=None, request=None, cache=None) -> Score:
    """Save a real-time decision and its audit event together (``audit_record_with``:
    one statement on PostgreSQL, one transaction elsewhere): a crash between the two
    can no longer leave a decision without its audit row. A final decision (approve,
    decline) of a portfolio with active webhooks is announced from the same transaction
    (``decision_final``): sent once it commits, never for a rollback. ``cache``: the
    real-time request's view, which knows the portfolio's endpoints without a query."""
    from django.db import transaction

    from scoring.audit import audit_record_with
    from scoring.services.decision_events import decision_endpoints, decision_final

    score.model_version = version  # the row we hold: the event names its number without a query
    announced = decision_endpoints(score=score, decision=score.decision, source="model", cache=cache)
    with transaction.atomic() if announced else nullcontext():
        audit_record_with(
            score, action="score.create", actor=requested_by, request=request, portfolio_id=version.portfolio_id,
            object_type="score",
            details={"applicant": score.applicant_id, "model_version": version.pk, "decision": score.decision},
        )  # fmt: skip
        if announced:
            decision_final(score=score, decision=score.decision, source="model", cache=cache)
    scores_written(portfolio=version.portfolio, version=version, count=1, mode="realtime")
    return score


def applicant_from_score_store(*, portfolio: Portfolio, features: dict, clean: dict) -> int | None:
    """New data scored with its external id (the schema's id column) is stored as that
    applicant (created, or its model features updated), so the decision can be found in
    the portal; returns its id. Without an id nothing is stored (a quote). Only the model
    features are kept: personal data and outcomes come through imports or the record API."""
    from scoring.models import Applicant

    id_column = next(iter(portfolio.schema.columns_with_role(portfolio.schema.ROLE_ID)), {}).get("name")
    external_id = features.get(id_column) if id_column else None
    if external_id is None or str(external_id).strip() == "":
        return None
    applicant, _ = Applicant.objects.update_or_create(
        portfolio=portfolio, external_id=str(external_id), defaults={"features": clean, "schema": portfolio.schema}
    )
    return applicant.pk


def _validated(*, portfolio: Portfolio, features: dict) -> dict:
    clean, problems = applicant_features_validate(portfolio=portfolio, features=features)
    if problems:
        raise ApplicantDataError(problems)
    return clean


def _new_applicant_data(
    *, portfolio: Portfolio, version: ModelVersion, features: dict, history: list[dict] | None
) -> tuple[PortfolioData, dict]:
    """Model inputs of data that is not stored: validated features (and, for a CNN,
    the history given as a payload, empty months where none is given)."""
    from scoring.services.datasets import static_frame

    clean = _validated(portfolio=portfolio, features=features)
    data = PortfolioData(
        applicant_ids=np.zeros(1, dtype=np.int64),
        external_ids=[""],
        static=static_frame(portfolio.schema, [clean]),
        features=[clean],
    )
    if version.family.needs_history:
        data.history, data.history_mask = history_payload_arrays(
            history or [], months=decider_load(version).model.history_pipeline_.months_
        )
    return data, clean


@dataclass
class WhatIfScore:
    """The champion's answer for changed data: nothing is saved."""

    version: ModelVersion
    features: dict
    row: ScoredRow


def score_whatif(
    *,
    portfolio: Portfolio,
    features: dict,
    applicant=None,
    history: list[dict] | None = None,
    top_k: int = TOP_REASONS,
) -> WhatIfScore:
    """Score changed feature values with the champion WITHOUT saving a score row
    (the portal's what-if panel): an analyst exploring "what if the loan were
    smaller" must not leave decisions behind. Given ``applicant``, features not in
    ``features`` keep the applicant's stored values and, unless ``history`` is
    given, the applicant's stored repayment history is used. The data is validated
    as an import would be (``ApplicantDataError`` lists the problems)."""
    from scoring.services.datasets import portfolio_data_of

    version = scorable_version(portfolio=portfolio)
    if applicant is not None and applicant.portfolio_id != portfolio.pk:
        raise ScoringError("That applicant belongs to another portfolio.")
    if applicant is not None and history is None:
        clean = _validated(portfolio=portfolio, features={**applicant.features, **features})
        data = portfolio_data_of(
            portfolio=portfolio,
            records=[(applicant.pk, applicant.external_id, clean)],
            with_history=version.family.needs_history,
        )
    else:
        base = applicant.features if applicant is not None else {}
        data, clean = _new_applicant_data(
            portfolio=portfolio, version=version, features={**base, **features}, history=history
        )
    _, rows = decide_rows(version=version, data=data, top_k=top_k)
    return WhatIfScore(version=version, features=clean, row=rows[0])


class ApplicantDataError(ScoringError):
    """The applicant's data given for scoring does not fit the schema (a 400 with each problem)."""

    code = "invalid"
    status = 400

    def __init__(self, problems: list[dict]):
        super().__init__(f"{len(problems)} problem(s) in the applicant's data", details={"applicant": problems})
        self.problems = problems


def history_payload_arrays(history: list[dict], *, months: int) -> tuple[np.ndarray, np.ndarray]:
    """A new applicant's history given as [{month, balance, amount_paid, days_past_due}]
    (oldest first, at most ``months``; the last entry is the latest month)."""
    if len(history) > months:
        raise ApplicantDataError([{"column": "history", "value": len(history), "message": f"at most {months} months"}])
    values = np.zeros((1, months, 3), dtype=np.float32)
    mask = np.zeros((1, months), dtype=bool)
    offset = months - len(history)
    problems = []
    for i, month in enumerate(history):
        try:
            row = [float(month["balance"]), float(month["amount_paid"]), float(month["days_past_due"])]
        except (KeyError, TypeError, ValueError):
            problems.append(
                {
                    "column": f"history[{i}]",
                    "value": str(month)[:100],
                    "message": "needs numeric balance, amount_paid, days_past_due",
                }
            )
            continue
        if not np.isfinite(row).all() or row[2] < 0:
            problems.append(
                {
                    "column": f"history[{i}]",
                    "value": str(month)[:100],
                    "message": "values must be finite; days_past_due ≥ 0",
                }
            )
            continue
        values[0, offset + i] = row
        mask[0, offset + i] = True
    if problems:
        raise ApplicantDataError(problems)
    return values, mask
