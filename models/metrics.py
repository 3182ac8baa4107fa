"""Model evaluation: discrimination, calibration, cut-off economics, chart points.

Conventions: ``y`` is 1 for a default (bad) and 0 for good; ``pd`` is a probability
of default; an applicant is approved when ``pd <= cutoff``. Every function returns
plain Python numbers, lists and dicts, ready for JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve

DEFAULT_CUTOFFS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
_EPS = 1e-12


@dataclass(frozen=True)
class CostMatrix:
    """Cost of the two wrong decisions, in units of one rejected good applicant.

    German credit's documented matrix: accepting a bad applicant costs 5, rejecting a
    good one costs 1.
    """

    bad_accepted: float = 5.0
    good_rejected: float = 1.0

    @property
    def bayes_cutoff(self) -> float:
        """The PD above which rejecting is cheaper, for calibrated PDs: c_g / (c_b + c_g)."""
        return self.good_rejected / (self.bad_accepted + self.good_rejected)


GERMAN_CREDIT_COSTS = CostMatrix(bad_accepted=5.0, good_rejected=1.0)


def _arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y and predictions differ in length: {y.shape} vs {p.shape}")
    return y, p


def auc(y: Any, score: Any) -> float:
    """Area under the ROC curve (score: higher = riskier)."""
    y, score = _arrays(y, score)
    return float(roc_auc_score(y, score))


def gini(y: Any, score: Any) -> float:
    """Gini coefficient (accuracy ratio) = 2 AUC - 1."""
    return 2.0 * auc(y, score) - 1.0


def _ks_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Population share, cumulative bad share and cumulative good share, riskiest first."""
    order = np.argsort(-score, kind="stable")
    bad = y[order]
    # Only count a step where the score changes, so ties do not depend on the order.
    distinct = np.r_[np.diff(score[order]) != 0, True]
    cum_bad = np.cumsum(bad)[distinct] / max(bad.sum(), 1)
    cum_good = np.cumsum(1 - bad)[distinct] / max((1 - bad).sum(), 1)
    population = (np.flatnonzero(distinct) + 1) / len(y)
    return np.r_[0.0, population], np.r_[0.0, cum_bad], np.r_[0.0, cum_good]


def ks(y: Any, score: Any) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between cumulative bad and good shares."""
    y, score = _arrays(y, score)
    _, cum_bad, cum_good = _ks_curve(y, score)
    return float(np.max(cum_bad - cum_good))


def brier(y: Any, pd: Any) -> float:
    y, pd = _arrays(y, pd)
    return float(np.mean((pd - y) ** 2))


def log_loss(y: Any, pd: Any) -> float:
    y, pd = _arrays(y, pd)
    pd = np.clip(pd, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(pd) + (1 - y) * np.log(1 - pd)))


def _downsample(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def roc_points(y: Any, score: Any, *, max_points: int = 101) -> dict[str, list[float]]:
    """ROC curve points (false and true positive rates), at most ``max_points``, for charts."""
    y, score = _arrays(y, score)
    fpr, tpr, _ = roc_curve(y, score)
    keep = _downsample(len(fpr), max_points)
    return {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()}


def ks_points(y: Any, score: Any, *, max_points: int = 101) -> dict[str, list[float]]:
    """Cumulative bad and good shares against the population share (riskiest first), for charts."""
    y, score = _arrays(y, score)
    population, cum_bad, cum_good = _ks_curve(y, score)
    keep = _downsample(len(population), max_points)
    return {
        "population": population[keep].round(5).tolist(),
        "cum_bad": cum_bad[keep].round(5).tolist(),
        "cum_good": cum_good[keep].round(5).tolist(),
    }


def decile_table(y: Any, pd: Any, *, n_bins: int = 10) -> list[dict[str, float]]:
    """Equal-count bins of predicted PD (lowest first): mean predicted PD vs observed rate."""
    y, pd = _arrays(y, pd)
    order = np.argsort(pd, kind="stable")
    rows = []
    for i, index in enumerate(np.array_split(order, n_bins), start=1):
        if len(index) == 0:
            continue
        rows.append(
            {
                "decile": i,
                "count": len(index),
                "mean_pd": float(pd[index].mean()),
                "observed_rate": float(y[index].mean()),
                "min_pd": float(pd[index].min()),
                "max_pd": float(pd[index].max()),
            }
        )
    return rows


def cutoff_table(y: Any, pd: Any, cutoffs: Any = DEFAULT_CUTOFFS) -> list[dict[str, float]]:
    """Approval rate and bad rate among the approved, for each PD cut-off (approve pd <= cutoff)."""
    y, pd = _arrays(y, pd)
    rows = []
    for cutoff in cutoffs:
        approved = pd <= cutoff
        n_approved = int(approved.sum())
        rows.append(
            {
                "cutoff": float(cutoff),
                "approval_rate": n_approved / len(y),
                "bad_rate": float(y[approved].mean()) if n_approved else 0.0,
                "approved": n_approved,
            }
        )
    return rows


def expected_cost(y: Any, pd: Any, cutoff: float, costs: CostMatrix = GERMAN_CREDIT_COSTS) -> dict[str, float]:
    """Total and per-applicant cost of approving ``pd <= cutoff``."""
    y, pd = _arrays(y, pd)
    approved = pd <= cutoff
    bad_accepted = int((approved & (y == 1)).sum())
    good_rejected = int((~approved & (y == 0)).sum())
    total = costs.bad_accepted * bad_accepted + costs.good_rejected * good_rejected
    return {
        "cutoff": float(cutoff),
        "total": float(total),
        "per_applicant": float(total / len(y)),
        "bad_accepted": bad_accepted,
        "good_rejected": good_rejected,
        "approval_rate": float(approved.mean()),
    }


def best_cutoff(y: Any, pd: Any, costs: CostMatrix = GERMAN_CREDIT_COSTS) -> dict[str, float]:
    """The PD cut-off with the lowest cost on these data (in-sample: optimistic on a test set)."""
    y, pd = _arrays(y, pd)
    order = np.argsort(pd, kind="stable")
    p, bad = pd[order], y[order]
    # Approving the k lowest PDs, k = 0..n; only k at a change of PD is a real cut-off.
    cum_bad = np.r_[0, np.cumsum(bad)]
    k = np.arange(len(p) + 1)
    cost = costs.bad_accepted * cum_bad + costs.good_rejected * ((len(p) - k) - (cum_bad[-1] - cum_bad))
    valid = np.r_[p[0] > 0, np.r_[p[1:] > p[:-1], True]]
    k_best = int(k[valid][np.argmin(cost[valid])])
    cutoff = 0.0 if k_best == 0 else float(p[k_best - 1])
    return expected_cost(y, pd, cutoff, costs)


def evaluate(
    y: Any,
    pd: Any,
    *,
    costs: CostMatrix = GERMAN_CREDIT_COSTS,
    cutoffs: Any = DEFAULT_CUTOFFS,
    max_points: int = 101,
) -> dict[str, Any]:
    """All the figures of a model report, for PDs on an evaluation split."""
    y, pd = _arrays(y, pd)
    return {
        "n": len(y),
        "bad_rate": float(y.mean()),
        "mean_pd": float(pd.mean()),
        "auc": auc(y, pd),
        "gini": gini(y, pd),
        "ks": ks(y, pd),
        "brier": brier(y, pd),
        "log_loss": log_loss(y, pd),
        "deciles": decile_table(y, pd),
        "cutoffs": cutoff_table(y, pd, cutoffs),
        "cost_matrix": asdict(costs),
        "cost_at_bayes_cutoff": expected_cost(y, pd, costs.bayes_cutoff, costs),
        "best_cutoff": best_cutoff(y, pd, costs),
        "roc": roc_points(y, pd, max_points=max_points),
        "ks_curve": ks_points(y, pd, max_points=max_points),
    }


def baseline_logistic(
    x_train: np.ndarray,
    y_train: Any,
    x_eval: np.ndarray,
    y_eval: Any,
    *,
    C: float = 1.0,
    costs: CostMatrix = GERMAN_CREDIT_COSTS,
    return_pd: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], np.ndarray]:
    """The benchmark a network must beat: an L2 logistic regression on the same
    transformed static features and the same split, with the same metrics."""
    model = LogisticRegression(C=C, max_iter=5000)
    model.fit(x_train, np.asarray(y_train))
    pd = model.predict_proba(x_eval)[:, 1]
    metrics = evaluate(y_eval, pd, costs=costs)
    return (metrics, pd) if return_pd else metrics
