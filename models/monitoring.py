"""Model monitoring math: population stability, outcome backtests and fairness.

Pure numpy (no Django): ``scoring.services.monitoring`` reads the data, calls these
functions and stores the results.

Stability. The *reference profile* of a variable is taken once, on the training
sample: numeric variables get quantile bins (deciles of the training values,
right-closed, open at both ends so later values outside the training range still
fall in a bin), categorical variables one bin per training category plus one for
categories never seen in training; both kinds have a bin for missing values. A
later population is counted into the same bins and compared with

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

(called CSI when the variable is a model input rather than the score). A bin empty
on either side gets ``EPSILON`` instead of 0, so the sum stays finite. Industry
convention: below 0.1 nothing to see, 0.1 to 0.25 watch, 0.25 and above act.

Fairness. For each protected group, the approval rate; the adverse impact ratio is
a group's rate over the most-favoured group's rate, judged against the
four-fifths rule (0.8, the US EEOC's guideline); the standardized mean difference
of the scores measures how far apart the score distributions sit, in pooled
standard deviations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.metrics import auc, ks

PASS, WATCH, FAIL = "pass", "watch", "fail"
_SEVERITY = {PASS: 0, WATCH: 1, FAIL: 2}

EPSILON = 1e-4  # share given to an empty bin
PSI_WATCH = 0.1
PSI_ACT = 0.25
N_BINS = 10
MISSING = "__missing__"
OTHER = "__other__"  # a category the training sample never had

FOUR_FIFTHS = 0.8
Z_SIGNIFICANT = 1.96  # two-proportion z-test at 5 %: a ratio below 0.8 this far from chance fails
SMD_WATCH = 0.5  # a "medium" effect (Cohen)
MIN_GROUP = 30  # smaller groups are reported, not judged

AUC_WATCH_DROP = 0.05
AUC_FAIL_DROP = 0.10
MIN_COHORT = 50


def worst(statuses: Sequence[str]) -> str:
    """The most severe of some statuses (pass when there are none)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=PASS)


def psi_status(value: float) -> str:
    if value >= PSI_ACT:
        return FAIL
    if value >= PSI_WATCH:
        return WATCH
    return PASS


# --- Reference profiles ----------------------------------------------------------


def _numeric(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _categories(values: Any) -> np.ndarray:
    """Values as strings, with None/NaN as ``MISSING``."""
    out = []
    for v in np.asarray(values, dtype=object).reshape(-1):
        missing = v is None or (isinstance(v, float) and math.isnan(v)) or v == ""
        out.append(MISSING if missing else str(v))
    return np.asarray(out, dtype=object)


def profile_numeric(values: Any, *, n_bins: int = N_BINS) -> dict[str, Any]:
    """Quantile bins of ``values`` (the reference) and the share in each, missing last."""
    x = _numeric(values)
    present = x[np.isfinite(x)]
    if len(present):
        quantiles = np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])
        edges = np.unique(quantiles)
    else:
        edges = np.array([], dtype=np.float64)
    profile: dict[str, Any] = {"type": "numeric", "edges": [float(e) for e in edges]}
    profile["shares"] = [float(s) for s in bin_shares(profile, x)]
    profile["rows"] = len(x)
    return profile


def profile_categorical(values: Any) -> dict[str, Any]:
    """One bin per category seen in ``values``, then unseen categories, then missing."""
    x = _categories(values)
    categories = sorted({v for v in x.tolist() if v != MISSING})
    profile: dict[str, Any] = {"type": "categorical", "categories": categories}
    profile["shares"] = [float(s) for s in bin_shares(profile, x)]
    profile["rows"] = len(x)
    return profile


def profile_of(values: Any, kind: str, *, n_bins: int = N_BINS) -> dict[str, Any]:
    if kind == "numeric":
        return profile_numeric(values, n_bins=n_bins)
    if kind == "categorical":
        return profile_categorical(values)
    raise ValueError(f"kind must be numeric or categorical, not {kind!r}")


def bin_counts(profile: dict[str, Any], values: Any) -> np.ndarray:
    """Counts of ``values`` in the bins of ``profile`` (missing values last)."""
    if profile["type"] == "numeric":
        x = _numeric(values)
        edges = np.asarray(profile["edges"], dtype=np.float64)
        present = np.isfinite(x)
        # Right-closed bins: x <= e0, e0 < x <= e1, ..., x > e_last.
        index = np.searchsorted(edges, x[present], side="left")
        counts = np.bincount(index, minlength=len(edges) + 1).astype(np.float64)
        return np.r_[counts, float((~present).sum())]
    x = _categories(values)
    categories = profile["categories"]
    position = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 2)
    for v in x.tolist():
        if v == MISSING:
            counts[-1] += 1
        else:
            counts[position.get(v, len(categories))] += 1
    return counts


def bin_shares(profile: dict[str, Any], values: Any) -> np.ndarray:
    counts = bin_counts(profile, values)
    total = counts.sum()
    return counts / total if total else counts


def bin_labels(profile: dict[str, Any]) -> list[str]:
    """Readable bin names, for reports and charts."""
    if profile["type"] == "categorical":
        return [*profile["categories"], "other", "missing"]
    edges = profile["edges"]
    if not edges:
        return ["all", "missing"]
    labels = [f"≤ {edges[0]:.6g}"]
    labels += [f"({a:.6g}, {b:.6g}]" for a, b in itertools.pairwise(edges)]
    return [*labels, f"> {edges[-1]:.6g}", "missing"]


# --- Stability -------------------------------------------------------------------


def psi(expected: Any, actual: Any, *, eps: float = EPSILON) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    if e.shape != a.shape:
        raise ValueError(f"expected and actual have different bins: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def stability(profile: dict[str, Any], values: Any) -> dict[str, Any]:
    """PSI of ``values`` against a reference profile, with the bins behind it."""
    actual = bin_shares(profile, values)
    value = psi(profile["shares"], actual)
    return {
        "psi": round(value, 6),
        "status": psi_status(value),
        "rows": len(np.asarray(values, dtype=object).reshape(-1)),
        "bins": [
            {"bin": label, "expected": round(float(e), 6), "actual": round(float(a), 6)}
            for label, e, a in zip(bin_labels(profile), profile["shares"], actual, strict=True)
        ],
    }


# --- Backtest --------------------------------------------------------------------


def cohort_backtest(
    cohorts: Any,
    y: Any,
    pd: Any,
    *,
    reference_auc: float | None = None,
    min_rows: int = MIN_COHORT,
) -> dict[str, Any]:
    """AUC and KS of the PDs against observed defaults, per cohort (a label such as
    "2026-09"), judged against the model's test AUC: a drop of ``AUC_WATCH_DROP``
    is watched, ``AUC_FAIL_DROP`` fails. A cohort with fewer than ``min_rows``
    outcomes or only one class is reported but not judged."""
    cohorts = np.asarray(cohorts, dtype=object).reshape(-1)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    pd = np.asarray(pd, dtype=np.float64).reshape(-1)
    rows = []
    for label in sorted(set(cohorts.tolist())):
        mask = cohorts == label
        rows.append(_backtest_row(str(label), y[mask], pd[mask], reference_auc, min_rows))
    overall = _backtest_row("all", y, pd, reference_auc, min_rows) if len(y) else None
    judged = [r["status"] for r in rows if r["judged"]]
    return {"cohorts": rows, "overall": overall, "reference_auc": reference_auc, "status": worst(judged)}


def _backtest_row(label: str, y: np.ndarray, pd: np.ndarray, reference_auc: float | None, min_rows: int) -> dict:
    row: dict[str, Any] = {
        "cohort": label,
        "rows": len(y),
        "defaults": int(y.sum()),
        "default_rate": round(float(y.mean()), 6) if len(y) else None,
        "mean_pd": round(float(pd.mean()), 6) if len(y) else None,
        "auc": None,
        "ks": None,
        "judged": False,
        "status": PASS,
    }
    if len(y) < min_rows or len(np.unique(y)) < 2:
        return row
    row["auc"] = round(auc(y, pd), 6)
    row["ks"] = round(ks(y, pd), 6)
    row["judged"] = reference_auc is not None
    if reference_auc is not None:
        drop = reference_auc - row["auc"]
        row["status"] = FAIL if drop >= AUC_FAIL_DROP else WATCH if drop >= AUC_WATCH_DROP else PASS
    return row


# --- Fairness --------------------------------------------------------------------


def standardized_mean_difference(a: Any, b: Any) -> float:
    """(mean a - mean b) / pooled standard deviation; 0 when both are constant."""
    a, b = _numeric(a), _numeric(b)
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2) if len(a) > 1 and len(b) > 1 else 0.0
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else 0.0


def _two_proportion_z(hits_a: float, n_a: float, hits_b: float, n_b: float) -> float:
    """z of the difference rate_a - rate_b under the pooled null of equal rates."""
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return (hits_a / n_a - hits_b / n_b) / se if se > 0 else 0.0


def fairness(groups: Any, approved: Any, scores: Any, *, min_group: int = MIN_GROUP) -> dict[str, Any]:
    """Approval rate per group, adverse impact ratio against the most-favoured group
    and standardized mean difference of scores against it.

    Fails when a group's ratio is below four-fifths and the gap is statistically
    significant (a two-proportion z-test), so a small group's bad luck is watched
    rather than failed; groups under ``min_group`` are reported, not judged.
    Scores are points: higher is better for the applicant."""
    groups = _categories(groups)
    approved = np.asarray(approved, dtype=bool).reshape(-1)
    scores = _numeric(scores)
    names = sorted(set(groups.tolist()))
    stats = {}
    for name in names:
        mask = groups == name
        n = int(mask.sum())
        stats[name] = {"n": n, "approved": int(approved[mask].sum()), "approval_rate": float(approved[mask].mean())}
    judged = [g for g in names if stats[g]["n"] >= min_group and g != MISSING]
    reference = max(judged, key=lambda g: stats[g]["approval_rate"], default=None)
    rows = []
    for name in names:
        s = stats[name]
        row: dict[str, Any] = {
            "group": name,
            "n": s["n"],
            "approved": s["approved"],
            "approval_rate": round(s["approval_rate"], 6),
            "mean_score": round(float(scores[groups == name].mean()), 4),
            "adverse_impact_ratio": None,
            "z": None,
            "smd": None,
            "judged": name in judged,
            "status": PASS,
        }
        if reference is not None and name in judged:
            ref = stats[reference]
            row["adverse_impact_ratio"] = (
                round(s["approval_rate"] / ref["approval_rate"], 6) if ref["approval_rate"] > 0 else 1.0
            )
            row["z"] = round(_two_proportion_z(ref["approved"], ref["n"], s["approved"], s["n"]), 4)
            row["smd"] = round(standardized_mean_difference(scores[groups == name], scores[groups == reference]), 6)
            if row["adverse_impact_ratio"] < FOUR_FIFTHS:
                row["status"] = FAIL if row["z"] >= Z_SIGNIFICANT else WATCH
            elif abs(row["smd"]) >= SMD_WATCH:
                row["status"] = WATCH
        rows.append(row)
    ratios = [r["adverse_impact_ratio"] for r in rows if r["adverse_impact_ratio"] is not None]
    return {
        "groups": rows,
        "reference_group": reference,
        "min_adverse_impact_ratio": min(ratios) if ratios else None,
        "four_fifths": FOUR_FIFTHS,
        "status": worst([r["status"] for r in rows]),
    }
