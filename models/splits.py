"""Deterministic stratified splits: the same seed and outcomes give the same rows.

Each class is shuffled on its own with ``numpy.random.default_rng(seed)`` and dealt
out in proportion, so every part has the same default rate (to one row).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

DEFAULT_FRACTIONS = {"train": 0.6, "validation": 0.15, "calibration": 0.1, "test": 0.15}


def stratified_split(y: Any, *, seed: int, fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Sorted row indices of each named part (e.g. train/validation/calibration/test)."""
    y = np.asarray(y).reshape(-1)
    weights = np.asarray(list(fractions.values()), dtype=np.float64)
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {dict(fractions)}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for label in np.unique(y):
        index = rng.permutation(np.flatnonzero(y == label))
        # Cumulative rounding: the counts add up to the class size exactly.
        bounds = np.round(np.cumsum(np.r_[0.0, weights]) * len(index)).astype(np.int64)
        for i in range(len(fractions)):
            parts[i].append(index[bounds[i] : bounds[i + 1]])
    return {name: np.sort(np.concatenate(p)) for name, p in zip(fractions, parts, strict=True)}


def stratified_kfold(y: Any, *, n_splits: int = 5, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) sorted row indices for each of ``n_splits`` stratified folds."""
    y = np.asarray(y).reshape(-1)
    if n_splits < 2:
        raise ValueError("n_splits must be at least 2")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    dealt = 0
    for label in np.unique(y):
        index = rng.permutation(np.flatnonzero(y == label))
        # Deal on from where the previous class stopped, so fold sizes differ by one at most.
        fold[index] = (dealt + np.arange(len(index))) % n_splits
        dealt += len(index)
    everything = np.arange(len(y))
    return [(everything[fold != k], everything[fold == k]) for k in range(n_splits)]


def out_of_time_split(
    dates: Any, *, fractions: Mapping[str, float] = DEFAULT_FRACTIONS
) -> dict[str, np.ndarray] | None:
    """Sorted row indices of each named part, in time: the first part (train) holds the
    oldest applications, the last (test) the newest, each part whole calendar months
    (so no row of a part is newer than any row of a later part). Parts get about their
    fraction of the dated rows; rows without a date cannot be placed in time and go to
    the first part. None when the dates span fewer months than there are parts."""
    dates = np.asarray(dates, dtype="datetime64[D]").reshape(-1)
    weights = np.asarray(list(fractions.values()), dtype=np.float64)
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {dict(fractions)}")
    dated = ~np.isnat(dates)
    months = dates[dated].astype("datetime64[M]")
    distinct, counts = np.unique(months, return_counts=True)
    if len(distinct) < len(fractions):
        return None
    # Each part ends at the month boundary nearest its cumulative share, and keeps at least one month.
    share = np.cumsum(counts) / counts.sum()
    ends: list[int] = []
    for i, target in enumerate(np.cumsum(weights)[:-1]):
        end = int(np.argmin(np.abs(share - target)))
        low = ends[-1] + 1 if ends else 0
        ends.append(min(max(end, low), len(distinct) - (len(fractions) - i)))
    part_of_month = np.searchsorted(np.array(ends), np.arange(len(distinct)), side="left")
    part = np.zeros(len(dates), dtype=np.int64)  # undated rows: the first part
    part[dated] = part_of_month[np.searchsorted(distinct, months)]
    return {name: np.flatnonzero(part == i) for i, name in enumerate(fractions)}
