"""Scores, decisions and reasons for a fitted ``CreditModel``: PD, points, and the
contribution of every source feature in calibrated log-odds, exact to the model.

The model's raw logit is explained by its family (``models.families``: DeepSHAP for
the networks, ``models.explain``), already grouped by source feature. Platt
calibration is affine in that logit (``a * raw + b``), so multiplying every
attribution by ``a`` and taking ``a * E[raw] + b`` as the base value gives
contributions that add up exactly to the calibrated log-odds of default; points
follow by the linear points scale. Attributions of the one-hot columns of one
feature are summed into that feature; the CNN's history attributions are summed
per channel into two windows, the last six months and the months before, which
become *temporal reasons* ("payments 30+ days late in 3 of the last 6 months").
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.artifacts import Source, get, write_bytes_atomically
from models.features import HISTORY_SOURCES, ColumnFrame
from models.scaling import PointsScale, decide_many
from models.training import CreditModel

RECENT_MONTHS = 6
BACKGROUND_ROWS = 100
LATE_DAYS = 30


def history_groups(months: int, recent: int = RECENT_MONTHS) -> list[str]:
    """Names of the temporal groups: each history channel in the recent and earlier windows."""
    names = []
    for source in HISTORY_SOURCES:
        names.append(f"{source}:last_{recent}m")
        if months > recent:
            names.append(f"{source}:earlier")
    return names


def background_sample(
    model: CreditModel, static: pd.DataFrame, history=None, history_mask=None, *, seed: int
) -> dict[str, np.ndarray]:
    """A seeded sample of training rows as the model's family explains against (npz-able arrays)."""
    from models.families import family_of

    return family_of(model.kind).background(model, static, history, history_mask, seed=seed)


def background_bytes(background: dict[str, np.ndarray]) -> bytes:
    """The background as npz bytes (no pickle): what is stored and hashed."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = dict(background)  # typed loosely: numpy's stub mistakes ** for allow_pickle
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def background_write(path: str | os.PathLike[str], background: dict[str, np.ndarray]) -> str:
    """Write the background atomically to a path; return its SHA-256."""
    return write_bytes_atomically(path, background_bytes(background))


def background_read(source: Source, expected_sha256: str) -> dict[str, np.ndarray]:
    """The arrays of a background given as a path, bytes or a binary file object,
    checked against the recorded SHA-256 before numpy parses them."""
    from models.artifacts import ArtifactIntegrityError

    data = get(source)
    actual = hashlib.sha256(data).hexdigest()
    if not expected_sha256 or actual != expected_sha256:
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "background"
        raise ArtifactIntegrityError(
            f"{name}: SHA-256 {actual} does not match the recorded {expected_sha256}; refusing to load it."
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {key: npz[key] for key in sorted(npz.files)}


@dataclass
class Decisions:
    """Scored rows. ``contributions`` (n, G) are calibrated log-odds of default per
    group (``groups``); each row adds up with ``base_log_odds`` to ``log_odds``."""

    pd: np.ndarray
    log_odds: np.ndarray
    score: np.ndarray
    decision: np.ndarray
    base_log_odds: float
    groups: list[str]
    contributions: np.ndarray | None

    def additivity_error(self) -> np.ndarray:
        assert self.contributions is not None
        return np.abs(self.contributions.sum(axis=1) + self.base_log_odds - self.log_odds)


class CreditDecider:
    """A fitted model with its explainer background, the points scale and the cutoffs."""

    def __init__(
        self,
        model: CreditModel,
        background: dict[str, np.ndarray],
        *,
        scale: PointsScale,
        approve_min_score: float,
        decline_below_score: float,
    ) -> None:
        self.model = model
        self.background = background
        self.scale = scale
        self.approve_min_score = approve_min_score
        self.decline_below_score = decline_below_score

    def fit(self) -> CreditDecider:
        # The family explains (DeepSHAP for networks, TreeSHAP for trees); its explainer is
        # safe to share between threads, so one decider serves a whole process.
        from models.families import family_of

        self.explainer_ = family_of(self.model.kind).explainer(self.model, self.background)
        self.groups_ = list(self.explainer_.groups_)
        calibrator = self.model.calibrator_
        self.a_, self.b_ = calibrator.a_, calibrator.b_
        self.base_log_odds_ = self.a_ * self.explainer_.expected_value_ + self.b_
        return self

    def decide(self, static: pd.DataFrame, history=None, history_mask=None, *, explain: bool = True) -> Decisions:
        if not hasattr(self, "explainer_"):
            self.fit()
        if explain:
            raw, grouped = self.explainer_.explain(static, history, history_mask)
            contributions = self.a_ * grouped
        else:
            raw = self.model.predict_raw_logit(static, history, history_mask)
            contributions = None
        log_odds = self.a_ * raw + self.b_
        pd_ = 1.0 / (1.0 + np.exp(-log_odds))
        score = self.scale.score(log_odds)
        decision = decide_many(
            score, approve_min_score=self.approve_min_score, decline_below_score=self.decline_below_score
        )
        return Decisions(pd_, log_odds, score, decision, self.base_log_odds_, self.groups_, contributions)


def history_facts(history: np.ndarray | None, history_mask: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-applicant facts quoted by temporal reasons, from the raw history (n, T, 3)."""
    if history is None:
        return {}
    mask = np.ones(history.shape[:2], dtype=bool) if history_mask is None else history_mask.astype(bool)
    late = (history[:, :, 2] >= LATE_DAYS) & mask
    return {
        "late_recent": late[:, -RECENT_MONTHS:].sum(axis=1),
        "late_earlier": late[:, :-RECENT_MONTHS].sum(axis=1),
        "months_observed": mask.sum(axis=1),
        "max_dpd_recent": np.where(mask[:, -RECENT_MONTHS:], history[:, -RECENT_MONTHS:, 2], 0).max(axis=1),
    }


def top_reasons(contributions: np.ndarray, groups: list[str], *, k: int = 4) -> list[list[tuple[int, float]]]:
    """For each row, the ``k`` groups that raise the risk most (positive log-odds), largest first."""
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    out = []
    for i, row in enumerate(order):
        out.append([(int(g), float(contributions[i, g])) for g in row if contributions[i, g] > 0])
    return out


class ValueLookup:
    """The applicant's own value behind a reason (a feature value, or a history
    fact), for many rows at once: each static column is turned into a Python list
    once, because indexing a DataFrame row by row costs ~60 µs a value and a batch
    chunk quotes four values for each of thousands of rows."""

    def __init__(self, static: pd.DataFrame | ColumnFrame, facts: dict[str, np.ndarray]):
        self._static = static
        self._facts = {key: values.tolist() for key, values in facts.items()}
        self._columns: dict[str, list] = {}

    def _column(self, name: str) -> list | None:
        if name not in self._columns:
            if name not in self._static.columns:
                return None
            column = self._static[name]
            if pd.api.types.is_float_dtype(column.dtype):
                # Vectorised: floats to Python floats, NaN to None.
                values = np.asarray(column, dtype=np.float64)  # a Series or a ColumnFrame's array
                missing = np.isnan(values)
                out = values.tolist()
                for i in np.flatnonzero(missing).tolist():
                    out[i] = None
                self._columns[name] = out
            else:
                self._columns[name] = [_plain(v) for v in column.astype(object).tolist()]
        return self._columns[name]

    def __call__(self, group: str, row: int) -> Any:
        if not group.startswith("history."):
            column = self._column(group)
            return None if column is None else column[row]
        channel, _, window = group.partition(":")
        if not self._facts:
            return None
        if channel == "history.days_past_due":
            return int(self._facts["late_recent" if window.startswith("last") else "late_earlier"][row])
        if channel == "history.observed":
            return int(self._facts["months_observed"][row])
        return None


def _plain(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars unwrapped, NaN and pandas' missing values as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


# --- Adverse-action reasons -----------------------------------------------------------
HIGH, LOW, MISSING = "high", "low", "missing"


def numeric_medians(model: CreditModel) -> dict[str, float]:
    """Each numeric input's training median: a reason says whether the applicant's value
    is above ("high") or below ("low") it, so its text can say which way it hurt."""
    pipeline = getattr(model, "static_pipeline_", None)
    return {c["name"]: float(c["median"]) for c in getattr(pipeline, "numeric_", [])}


def category_text(value: Any) -> str:
    """A category as a catalogue key spells it: a whole number without decimals (a
    category column of numbers is read as floats), anything else as written."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def reason_key(group: str, value: Any, medians: dict[str, float]) -> str:
    """The catalogue key of a reason: ``<feature>:high|low|missing`` for a numeric
    feature, ``<feature>:missing`` for any missing value, ``<feature>=<category>`` for a
    category (each category its own statement); a history window is its group. A key
    the catalogue lacks falls back to the group's entry (catalogues made before these
    keys existed), so an old policy version still gives its old texts."""
    if group.startswith("history."):
        return group
    if value is None:
        return f"{group}:{MISSING}"
    if group in medians and isinstance(value, int | float):
        return f"{group}:{HIGH if value > medians[group] else LOW}"
    return f"{group}={category_text(value)}"


def format_value(value: Any, *, integer: bool = False) -> str:
    """A value as a notice prints it: integers without decimals, other numbers with at
    most two, thousands separated; never ``None`` (an empty string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        if not np.isfinite(number):
            return ""
        if integer or number.is_integer():
            return f"{round(number):,d}"
        return f"{number:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def boundary_points(
    contributions: np.ndarray,
    score: np.ndarray,
    *,
    cutoff: float,
    scale: PointsScale,
    reference: np.ndarray,
    reference_log_odds: np.ndarray,
    k: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Points each group cost an applicant against applicants AT the approval cutoff.

    The reference point is the mean contribution vector of the ``k`` reference applicants
    whose log-odds are nearest the cutoff's, moved by an equal share per group so that it
    lies exactly on the cutoff. Against it, group ``g`` cost ``factor * (c_g - ref_g)``
    points, and a row's costs add up to ``cutoff - score``: the points it was short
    (negative for an applicant above the cutoff). Returns (costs (n, G), reference (n, G)).
    Measuring from the average applicant instead misleads when the cutoff is far from the
    mean: a feature can push above-average risk yet be no worse than at the cutoff."""
    contributions = np.atleast_2d(np.asarray(contributions, dtype=np.float64))
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    factor = scale.factor
    log_odds_cutoff = float(scale.log_odds_default(cutoff))
    nearest = np.argsort(np.abs(reference_log_odds - log_odds_cutoff), kind="stable")[: max(1, k)]
    mean = reference[nearest].mean(axis=0)
    # Each row's reference sums to its own contributions less the shortfall, so the costs
    # add up to the stored score's shortfall exactly (the stored contributions are rounded).
    target = contributions.sum(axis=1) - (cutoff - score) / factor
    shift = (target - mean.sum())[:, None] / contributions.shape[1]
    ref = mean[None, :] + shift
    return factor * (contributions - ref), ref
