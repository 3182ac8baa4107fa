"""The leakage and sanity screen run at training time: signs that a model learned
something it will not have when it scores a new application.

For each model input, on the training rows:

- ``auc``: how well the feature alone ranks defaulters above the others. A number:
  the rank AUC of its value, symmetrised (``max(AUC, 1 - AUC)``, missing values
  left out). A category: the AUC of an out-of-fold target-rate encoding (each
  fold's rows get the smoothed default rate of their category in the other folds,
  so a category with one row cannot encode its own outcome).
- ``separation``: the share of one class that a single cut of the feature isolates
  while taking at most ``separation_fpr`` of the other (the best of the two
  classes and both directions). Near 1: the feature nearly separates the classes.
- ``pattern``: how the value's form differs between the classes, as the largest gap
  in share between defaulters and the others of: integer values that are multiples
  of each of ``periods`` (12, 10, 5: a loan term that stops being a multiple of 12
  once the loan is charged off), round values (multiples of 100), and missing values.

And for the model, ``model_auc`` far above its logistic baseline on the same test
rows (``model_gap``), or too good to believe (``model_auc``).

A feature is flagged when its AUC alone reaches ``feature_auc``, its separation
reaches ``separation``, or a pattern gap reaches ``pattern_gap``. The defaults flag
the planted leak of the hard synthetic mode and nothing else there, nothing on
German credit or the default synthetic mode (tests/models/test_screen.py). Pure
numpy and pandas: ``scoring`` stores the result with the model version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

FORMAT_VERSION = 1  # 1: feature AUC, separation, value patterns, model vs baseline

PERIODS = (12, 10, 5)
ROUND = 100
SMOOTHING = 20.0  # prior weight (rows) of the overall default rate in a category's encoded rate
FOLDS = 5
MIN_CLASS_ROWS = 20  # below this many rows of a class, patterns and separation are not judged


@dataclass(frozen=True)
class ScreenThresholds:
    """When the screen flags (each a parameter; the defaults are chosen by measurement,
    see the module docstring)."""

    feature_auc: float = 0.85
    separation: float = 0.5
    separation_fpr: float = 0.01
    pattern_gap: float = 0.3
    model_gap: float = 0.15
    model_auc: float = 0.97


def rank_auc(score: np.ndarray, y: np.ndarray) -> float:
    """The Mann-Whitney AUC of ``score`` for ``y == 1`` (ties count half); nan with one class."""
    score, y = np.asarray(score, dtype=np.float64), np.asarray(y).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _separation(score: np.ndarray, y: np.ndarray, fpr: float) -> float:
    """The largest share of one class beyond a cut that leaves at most ``fpr`` of the
    other on the same side, over both classes and both directions."""
    best = 0.0
    for a, b in ((y, ~y), (~y, y)):
        if a.sum() < MIN_CLASS_ROWS or b.sum() < MIN_CLASS_ROWS:
            continue
        other = np.sort(score[b])
        low, high = np.quantile(other, fpr, method="lower"), np.quantile(other, 1 - fpr, method="higher")
        # Strictly beyond the other class's quantile: ties with it do not count.
        best = max(best, float(np.mean(score[a] < low)), float(np.mean(score[a] > high)))
    return best


def _target_encoded(labels: pd.Series, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold smoothed default rate of each row's category (missing is a category)."""
    codes = pd.factorize(labels.astype(object).where(labels.notna(), "__missing__"))[0]
    folds = np.random.default_rng(seed).permutation(len(y)) % FOLDS
    encoded = np.empty(len(y), dtype=np.float64)
    for k in range(FOLDS):
        inside, outside = folds == k, folds != k
        prior = y[outside].mean()
        count = np.bincount(codes[outside], minlength=codes.max() + 1)
        hits = np.bincount(codes[outside], weights=y[outside], minlength=codes.max() + 1)
        rate = (hits + SMOOTHING * prior) / (count + SMOOTHING)
        encoded[inside] = rate[codes[inside]]
    return encoded


def _patterns(values: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """Share of each value form among defaulters and among the others."""
    present = ~np.isnan(values)
    forms = {"missing": ~present}
    finite = np.where(present, values, 0.0)
    integral = present & (finite == np.round(finite))
    # Residues only mean something for values that are (nearly all) whole numbers.
    if present.any() and integral[present].mean() > 0.95:
        for period in PERIODS:
            forms[f"multiple_of_{period}"] = integral & (np.mod(finite, period) == 0)
    forms[f"multiple_of_{ROUND}"] = integral & (np.mod(finite, ROUND) == 0)
    out = {}
    for name, mask in forms.items():
        base = present if name != "missing" else np.ones_like(present)
        pos, neg = base & y, base & ~y
        if pos.sum() < MIN_CLASS_ROWS or neg.sum() < MIN_CLASS_ROWS:
            continue
        out[name] = {"defaulted": float(mask[pos].mean()), "repaid": float(mask[neg].mean())}
    return out


def feature_screen(
    static: pd.DataFrame,
    y: np.ndarray,
    *,
    categorical: Sequence[str],
    thresholds: ScreenThresholds = ScreenThresholds(),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One entry per column of ``static``: its AUC alone, separation, value patterns and flags."""
    y = np.asarray(y).astype(bool)
    out = []
    for name in static.columns:
        column = static[name]
        entry: dict[str, Any] = {"feature": name, "type": "categorical" if name in categorical else "numeric"}
        if name in categorical:
            score = _target_encoded(column, y.astype(np.float64), seed)
            patterns = {}
            missing = column.isna().to_numpy()
            if y.sum() >= MIN_CLASS_ROWS and (~y).sum() >= MIN_CLASS_ROWS:
                patterns["missing"] = {"defaulted": float(missing[y].mean()), "repaid": float(missing[~y].mean())}
            auc = rank_auc(score, y)
            separation = _separation(score, y, thresholds.separation_fpr)
        else:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
            present = ~np.isnan(values)
            auc = rank_auc(values[present], y[present]) if present.any() else float("nan")
            auc = max(auc, 1 - auc) if np.isfinite(auc) else auc
            separation = _separation(values[present], y[present], thresholds.separation_fpr) if present.any() else 0.0
            patterns = _patterns(values, y)
        gaps = {form: abs(s["defaulted"] - s["repaid"]) for form, s in patterns.items()}
        flags = []
        if np.isfinite(auc) and auc >= thresholds.feature_auc:
            flags.append(f"AUC {auc:.3f} alone (flag at {thresholds.feature_auc:g})")
        if separation >= thresholds.separation:
            flags.append(
                f"a single cut isolates {separation:.0%} of one class with ≤ {thresholds.separation_fpr:.0%} "
                "of the other"
            )
        for form, gap in sorted(gaps.items(), key=lambda item: -item[1]):
            if gap >= thresholds.pattern_gap:
                share = patterns[form]
                flags.append(
                    f"{form.replace('_', ' ')}: {share['defaulted']:.1%} of defaulters against "
                    f"{share['repaid']:.1%} of the others (a value recorded after the outcome?)"
                )
        entry.update(
            auc=None if not np.isfinite(auc) else round(float(auc), 4),
            separation=round(separation, 4),
            patterns={form: {k: round(v, 4) for k, v in s.items()} for form, s in patterns.items()},
            flags=flags,
        )
        out.append(entry)
    return sorted(out, key=lambda e: -(e["auc"] or 0.0))


def model_screen(
    *, model_auc: float | None, baseline_auc: float | None, thresholds: ScreenThresholds = ScreenThresholds()
) -> dict[str, Any]:
    """Flags of a model far above its logistic baseline on the same test rows, or too good."""
    flags = []
    if model_auc is not None and baseline_auc is not None and model_auc - baseline_auc >= thresholds.model_gap:
        flags.append(
            f"test AUC {model_auc:.3f} is {model_auc - baseline_auc:.3f} above the logistic baseline's "
            f"{baseline_auc:.3f} (flag at {thresholds.model_gap:g})"
        )
    if model_auc is not None and model_auc >= thresholds.model_auc:
        flags.append(
            f"test AUC {model_auc:.3f} is too good to believe for credit risk (flag at {thresholds.model_auc:g})"
        )
    return {"auc": model_auc, "baseline_auc": baseline_auc, "flags": flags}


def screen(
    static: pd.DataFrame,
    y: np.ndarray,
    *,
    categorical: Sequence[str],
    model_auc: float | None = None,
    baseline_auc: float | None = None,
    thresholds: ScreenThresholds | Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The whole screen as plain JSON: thresholds, features (strongest first), model,
    ``flagged`` (the flagged features' names, and ``"model"`` if the model is) and
    ``findings`` (one sentence each)."""
    if thresholds is None:
        thresholds = ScreenThresholds()
    elif not isinstance(thresholds, ScreenThresholds):
        thresholds = ScreenThresholds(**thresholds)
    features = feature_screen(static, y, categorical=categorical, thresholds=thresholds, seed=seed)
    model = model_screen(model_auc=model_auc, baseline_auc=baseline_auc, thresholds=thresholds)
    findings = [f"{e['feature']}: {flag}" for e in features for flag in e["flags"]]
    findings += [f"model: {flag}" for flag in model["flags"]]
    flagged = [e["feature"] for e in features if e["flags"]] + (["model"] if model["flags"] else [])
    return {
        "format_version": FORMAT_VERSION,
        "rows": len(y),
        "thresholds": asdict(thresholds),
        "features": features,
        "model": model,
        "flagged": flagged,
        "findings": findings,
    }
