"""Monitoring of model versions in use: population stability, outcome backtests
and fairness, stored as ``MonitoringReport`` rows (the math is ``models.monitoring``).

Runs after each nightly batch run (for the champion and the challenger that
shadow-scored it, on the scores the run wrote), from ``monitor_portfolio``, and on
demand when a validator promotes a version no report covers yet (then the version
scores the portfolio's current applicants, unexplained, in memory).

A report whose status is ``fail`` raises an alert: a WARNING log line, an audit
event ``monitoring.alert``, and a mail to the portfolio's validators. ``watch``
findings are listed in the report without a notification.
"""

from __future__ import annotations

import itertools
import logging
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from models import monitoring as m
from models.coltypes import column_type
from models.scaling import APPROVE
from scoring.models import Applicant, BatchRun, DatasetSchema, ModelVersion, MonitoringReport, Portfolio
from scoring.services.datasets import PortfolioData, _fetch, history_arrays, latest_month, portfolio_data

logger = logging.getLogger(__name__)

REFERENCE_FORMAT = 1
HISTORY_READ_CHUNK = 1000  # ids per history query (IN lists stay small on every database)


# --- Reference profile (taken at training time) ---------------------------------


def monitoring_reference_build(*, model, data: PortfolioData, schema: DatasetSchema, kind: str) -> dict[str, Any]:
    """Bin edges and shares of the PD and of each model feature on the training
    sample: what later populations are compared with. The PD stands for the score:
    points are a decreasing function of the PD, so quantile bins and PSI agree, and
    the PD does not move when the portfolio's points scale is changed."""
    pd_ = model.predict_pd(**data.model_inputs(kind))
    features = {}
    for column in schema.columns_with_role(DatasetSchema.ROLE_NUMERIC, DatasetSchema.ROLE_CATEGORICAL):
        name = column["name"]
        if name in data.static.columns:
            features[name] = m.profile_of(data.static[name].to_numpy(), column["role"])
    return {"format": REFERENCE_FORMAT, "rows": len(data), "score": m.profile_numeric(pd_), "features": features}


# --- The population a report looks at --------------------------------------------


class _Population:
    """Row-aligned: the applicants (ids and features), their PD, points and decision."""

    def __init__(self, data: PortfolioData, pd_: np.ndarray, points: np.ndarray, decision: np.ndarray, source: str):
        self.data, self.pd, self.points, self.decision, self.source = data, pd_, points, decision, source

    def __len__(self) -> int:
        return len(self.data)


def _sample(data: PortfolioData, max_rows: int | None, seed: int) -> PortfolioData:
    if max_rows is None or len(data) <= max_rows:
        return data
    keep = np.sort(np.random.default_rng(seed).choice(len(data), size=max_rows, replace=False))
    return data.subset(keep)


def _population_of_run(*, portfolio: Portfolio, version: ModelVersion, run: BatchRun, max_rows: int | None):
    scores = _fetch(
        "SELECT applicant_id, pd, score, decision FROM scoring_score WHERE run_id = %s AND model_version_id = %s",
        [run.pk, version.pk],
    )
    data = portfolio_data(portfolio=portfolio, with_history=False)
    lookup = scores.set_index("applicant_id")
    present = np.flatnonzero(pd.Index(lookup.index).get_indexer(data.applicant_ids) >= 0)
    data = _sample(data.subset(present), max_rows, seed=run.pk)
    rows = lookup.loc[data.applicant_ids]
    return _Population(
        data,
        rows["pd"].to_numpy(dtype=np.float64),
        rows["score"].to_numpy(dtype=np.float64),
        rows["decision"].astype(str).to_numpy(),
        source=f"scores of batch run {run.pk}",
    )


def _population_on_demand(*, portfolio: Portfolio, version: ModelVersion, max_rows: int | None):
    """Score the current applicants with ``version`` in memory (no explanation, nothing written)."""
    from models.synthetic import month_range
    from scoring.inference import decider_load
    from scoring.services.datasets import HISTORY_MONTHS

    data = _sample(portfolio_data(portfolio=portfolio, with_history=False), max_rows, seed=version.pk)
    if version.family.needs_history:
        data.months = month_range(latest_month(portfolio) or date.today(), HISTORY_MONTHS)
        parts = [
            history_arrays(
                data.applicant_ids[i : i + HISTORY_READ_CHUNK], portfolio_id=portfolio.pk, months=data.months
            )
            for i in range(0, len(data), HISTORY_READ_CHUNK)
        ]
        if parts:
            data.history = np.concatenate([p[0] for p in parts])
            data.history_mask = np.concatenate([p[1] for p in parts])
    if not len(data):
        empty = np.zeros(0)
        return _Population(data, empty, empty, empty.astype(str), source="current applicants (none)")
    decisions = decider_load(version).decide(**data.model_inputs(version.kind), explain=False)
    return _Population(
        data,
        np.asarray(decisions.pd, dtype=np.float64),
        np.asarray(decisions.score, dtype=np.float64),
        np.asarray(decisions.decision).astype(str),
        source="current applicants, scored on demand",
    )


# --- The three reports ------------------------------------------------------------


def _stability(version: ModelVersion, population: _Population) -> tuple[str, dict, list[str]]:
    reference = version.monitoring_reference or {}
    if not reference.get("score"):
        return (
            m.WATCH,
            {"note": "no reference profile: the version was trained before monitoring existed; retrain to monitor"},
            ["No training reference profile to compare with: stability cannot be judged."],
        )
    score = m.stability(reference["score"], population.pd)
    features = {}
    for name, profile in reference.get("features", {}).items():
        values = population.data.static[name].to_numpy() if name in population.data.static.columns else []
        features[name] = m.stability(profile, values)
    alerts = []
    checks = [("PSI of the score", score)] + [(f"CSI of feature {name}", r) for name, r in features.items()]
    for what, result in checks:
        if result["status"] != m.PASS:
            level = "act (≥ 0.25)" if result["status"] == m.FAIL else "watch (≥ 0.1)"
            alerts.append(f"{what} is {result['psi']:.3f}: {level}.")
    status = m.worst([score["status"], *(r["status"] for r in features.values())])
    results = {
        "score": score,
        "features": features,
        "reference_rows": reference.get("rows"),
        "thresholds": {"watch": m.PSI_WATCH, "act": m.PSI_ACT},
    }
    return status, results, alerts


def _outcomes(portfolio: Portfolio) -> pd.DataFrame:
    frame = _fetch(
        "SELECT applicant_id, defaulted, observed_on FROM scoring_outcome WHERE portfolio_id = %s", [portfolio.pk]
    )
    if frame.empty:
        return frame
    frame["defaulted"] = frame["defaulted"].map(lambda v: str(v).lower() in {"1", "t", "true"}).astype(np.int64)
    frame["cohort"] = frame["observed_on"].astype(str).str[:7]  # YYYY-MM of the observation
    return frame


def _backtest(version: ModelVersion, population: _Population, portfolio: Portfolio) -> tuple[str, dict, list[str]]:
    outcomes = _outcomes(portfolio)
    reference_auc = (version.metrics or {}).get("test", {}).get("auc")
    if outcomes.empty:
        return m.PASS, {"note": "no outcomes have arrived yet", "cohorts": [], "reference_auc": reference_auc}, []
    position = pd.Series(np.arange(len(population)), index=population.data.applicant_ids)
    rows = position.reindex(outcomes["applicant_id"].to_numpy()).to_numpy()
    keep = ~np.isnan(rows.astype(float))
    outcomes, rows = outcomes[keep], rows[keep].astype(np.int64)
    result = m.cohort_backtest(
        outcomes["cohort"].to_numpy(),
        outcomes["defaulted"].to_numpy(),
        population.pd[rows],
        reference_auc=reference_auc,
    )
    result["cohort_by"] = "month of Outcome.observed_on (when the outcome was observed)"
    result["note"] = (
        "PDs are the monitored scores of each applicant; outcomes already used in training are included, "
        "so early cohorts are partly in-sample."
    )
    alerts = []
    for row in result["cohorts"]:
        if row["status"] != m.PASS:
            alerts.append(
                f"Cohort {row['cohort']}: AUC {row['auc']:.3f} against {reference_auc:.3f} at validation "
                f"({'fail' if row['status'] == m.FAIL else 'watch'})."
            )
    return result["status"], result, alerts


AGE_BANDS = ((25, "18-25"), (35, "26-35"), (50, "36-50"), (65, "51-65"))


def _group_labels(values: list[Any], column: dict) -> list[Any]:
    """Groups of a protected attribute. A categorical one is its own groups; a
    numeric one is banded (ages by the usual bands, anything else by quartiles), as
    a group per distinct number would be too small to judge."""
    if not column_type(column).numeric:
        return values
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    if "age" in column["name"].lower():
        labels = [
            None if np.isnan(v) else next((label for top, label in AGE_BANDS if v <= top), f"{AGE_BANDS[-1][0] + 1}+")
            for v in numbers
        ]
        return labels
    present = numbers[~np.isnan(numbers)]
    if not len(present):
        return [None] * len(values)
    edges = np.unique(np.quantile(present, [0.25, 0.5, 0.75]))
    bounds = [present.min(), *edges, present.max()]
    names = [f"{a:.6g}-{b:.6g}" for a, b in itertools.pairwise(bounds)]
    return [None if np.isnan(v) else names[int(np.searchsorted(edges, v, side="left"))] for v in numbers]


def _fairness(population: _Population, portfolio: Portfolio) -> tuple[str, dict, list[str]]:
    schema = portfolio.schema
    columns = schema.columns_with_role(DatasetSchema.ROLE_PROTECTED)
    if not columns or not len(population):
        return m.PASS, {"note": "no protected attributes declared" if not columns else "no rows", "attributes": {}}, []
    ids = population.data.applicant_ids
    stored = dict(
        Applicant.objects.filter(portfolio=portfolio, id__gte=int(ids.min()), id__lte=int(ids.max()))
        .values_list("id", "protected_attributes")
        .iterator(chunk_size=10_000)
    )
    approved = population.decision == APPROVE
    results, alerts, statuses = {}, [], []
    for column in columns:
        attribute = column["name"]
        groups = _group_labels([(stored.get(int(i)) or {}).get(attribute) for i in ids], column)
        result = m.fairness(groups, approved, population.points)
        results[attribute] = result
        statuses.append(result["status"])
        for row in result["groups"]:
            if row["status"] == m.FAIL:
                alerts.append(
                    f"{attribute} = {row['group']}: approval rate {row['approval_rate']:.1%} is "
                    f"{row['adverse_impact_ratio']:.2f} of {result['reference_group']}'s, below four-fifths."
                )
            elif row["status"] == m.WATCH:
                alerts.append(
                    f"{attribute} = {row['group']}: adverse impact ratio {row['adverse_impact_ratio']:.2f}, "
                    f"score difference {row['smd']:+.2f} SD against {result['reference_group']} (watch)."
                )
    return m.worst(statuses), {"attributes": results}, alerts


# --- Running and alerting ------------------------------------------------------------


def monitoring_run(
    *,
    portfolio: Portfolio,
    model_version: ModelVersion,
    run: BatchRun | None = None,
    alert: bool = True,
    max_rows: int | None = None,
) -> list[MonitoringReport]:
    """Compute and store the stability, backtest and fairness reports of
    ``model_version``: on the scores ``run`` wrote with it, or (no run) on the
    portfolio's current applicants scored on demand. At most ``max_rows``
    applicants (default ``MONITORING_MAX_ROWS``), a seeded sample beyond that.
    A failed report raises an alert unless ``alert`` is false."""
    if model_version.portfolio_id != portfolio.pk:
        raise ValueError("That model version belongs to another portfolio.")
    max_rows = max_rows or settings.MONITORING_MAX_ROWS
    if run is not None:
        population = _population_of_run(portfolio=portfolio, version=model_version, run=run, max_rows=max_rows)
    else:
        population = _population_on_demand(portfolio=portfolio, version=model_version, max_rows=max_rows)
    computed = {
        MonitoringReport.KIND_STABILITY: _stability(model_version, population),
        MonitoringReport.KIND_BACKTEST: _backtest(model_version, population, portfolio),
        MonitoringReport.KIND_FAIRNESS: _fairness(population, portfolio),
    }
    reports = []
    with transaction.atomic():
        for kind, (status, results, alerts) in computed.items():
            results = {**results, "population": population.source}
            report = MonitoringReport.objects.create(
                portfolio=portfolio, model_version=model_version, run=run, kind=kind, status=status,
                results=_jsonable(results), alerts=alerts, rows=len(population),
            )  # fmt: skip
            reports.append(report)
    if alert:
        for report in reports:
            if report.status == MonitoringReport.STATUS_FAIL:
                monitoring_alert_raise(report=report)
    return reports


def _jsonable(value: Any) -> Any:
    """numpy numbers and NaN made JSON-safe (NaN becomes null)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def portfolio_validators(portfolio: Portfolio) -> list:
    """Active users who may validate the portfolio's models (role and grant)."""
    from guardian.shortcuts import get_users_with_perms

    from scoring.permissions import has_portfolio_perm

    candidates = get_users_with_perms(portfolio, with_group_users=True, only_with_perms_in=["validate_portfolio"])
    # A grant alone is not enough: has_portfolio_perm also asks for the validator role.
    return [u for u in candidates if has_portfolio_perm(u, portfolio, "validate_portfolio")]


def monitoring_alert_raise(*, report: MonitoringReport) -> None:
    """A failed report: a WARNING log line, an audit event, a mail to the validators.
    Neither the audit nor the mail may stop the other, nor the monitoring job."""
    from scoring.audit import audit_record

    version = report.model_version
    portfolio = report.portfolio
    summary = (
        f"{report.get_kind_display()} of {portfolio.name} model v{version.version} ({version.kind}) failed: "
        + " ".join(report.alerts)
    )
    logger.warning("monitoring alert: %s", summary)
    audit_record(
        action="monitoring.alert",
        portfolio_id=portfolio.pk,
        object_type="monitoringreport",
        object_ids=[report.pk],
        details={"kind": report.kind, "status": report.status, "model_version_id": version.pk,
                 "run_id": report.run_id, "findings": len(report.alerts)},
        outcome="failure",
    )  # fmt: skip
    recipients = sorted({u.email for u in portfolio_validators(portfolio) if u.email})
    if not recipients:
        return
    try:
        send_mail(
            subject=f"[riskapp] {portfolio.name}: {report.kind} check of model v{version.version} failed",
            message=summary
            + f"\n\nReport #{report.pk}, {report.rows:,} applicants ({report.results.get('population')}).",
            from_email=None,
            recipient_list=recipients,
        )
    except Exception:  # a mail server outage must not lose the report; the log line and audit event stand
        logger.exception("monitoring alert mail for report %s not sent", report.pk)


def monitoring_enqueue(*, run: BatchRun) -> None:
    """After a nightly run: monitor the champion and the challenger on the run's
    scores, once the transaction that finished the run commits."""
    from scoring.tasks import monitoring_run as task

    versions = [v for v in (run.model_version_id, run.challenger_version_id) if v]

    def send() -> None:
        for version_id in versions:
            task.delay(version_id, run.pk)

    transaction.on_commit(send)


# --- The promotion gate ------------------------------------------------------------

GATING_KINDS = (MonitoringReport.KIND_STABILITY, MonitoringReport.KIND_FAIRNESS)


def monitoring_latest_reports(*, model_version: ModelVersion) -> dict[str, MonitoringReport | None]:
    latest = {}
    for kind in GATING_KINDS:
        latest[kind] = (
            MonitoringReport.objects.filter(model_version=model_version, kind=kind)
            .order_by("-created_at", "-id")
            .first()
        )
    return latest


def promotion_blockers(*, model_version: ModelVersion) -> list[MonitoringReport]:
    """The failed reports that block promoting ``model_version``: its latest stability
    and fairness reports, computed now on the portfolio's current applicants if it has
    none yet."""
    latest = monitoring_latest_reports(model_version=model_version)
    if any(report is None for report in latest.values()):
        fresh = monitoring_run(portfolio=model_version.portfolio, model_version=model_version, alert=False)
        latest = {r.kind: r for r in fresh if r.kind in GATING_KINDS}
    return [r for r in latest.values() if r is not None and r.status == MonitoringReport.STATUS_FAIL]
