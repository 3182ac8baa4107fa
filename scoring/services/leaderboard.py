"""The leaderboard of a training group: the families one request trained, side by side
with the logistic baseline, on the same test rows.

What training stored is reused, not recomputed: each version's test metrics (AUC,
Gini, KS, Brier, calibration by decile), its fit time and its explained rows per
second, and the baseline fitted with it. Those figures are only comparable when every
version was tested on the same applicants, which each version records as the hash of
its test rows (``validations[scheme]["test_rows_sha256"]``). When the hashes differ
(rows imported between two trainings of the group, or a version trained before the
hash was recorded) the group is scored afresh on the first version's test split by
``scoring.services.comparison`` and says so (``source = "rescored"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scoring.models import ModelVersion
from scoring.services.comparison import COMPARABLE, MAX_COMPARED, ComparisonError, model_versions_compare

FIGURES = ("auc", "gini", "ks", "brier", "log_loss", "n", "bad_rate", "mean_pd")


def _figures(metrics: dict | None) -> dict[str, Any]:
    metrics = metrics or {}
    return {**{key: metrics.get(key) for key in FIGURES}, "deciles": metrics.get("deciles") or []}


@dataclass
class LeaderboardEntry:
    version: ModelVersion
    metrics: dict[str, Any] | None  # FIGURES and deciles on the shared test rows; None until trained
    fit_seconds: float | None = None
    training_seconds: float | None = None  # claimed to done: loading, every split scheme, artifact
    explained_rows_per_s: float | None = None


@dataclass
class Leaderboard:
    group: str | None  # the training group's uuid; None for a version trained alone
    entries: list[LeaderboardEntry] = field(default_factory=list)
    baseline: dict[str, Any] | None = None  # the logistic baseline on the same rows
    baseline_version: ModelVersion | None = None  # the version it was fitted with
    same_rows: bool = True  # every trained entry's figures are on the same test rows
    source: str = "stored"  # "stored": training's figures; "rescored": scored again on one split
    test_rows: int | None = None
    test_rows_sha256: str | None = None

    def calibration_by_decile(self) -> list[dict[str, Any]]:
        """Decile by decile, (mean predicted PD, observed default rate) of each trained
        entry and then of the baseline: one table for the page."""
        columns = [e.metrics["deciles"] for e in self.entries if e.metrics] + (
            [self.baseline["deciles"]] if self.baseline else []
        )
        rows = []
        for i in range(max((len(c) for c in columns), default=0)):
            cells = [(c[i]["mean_pd"], c[i]["observed_rate"]) if i < len(c) else (None, None) for c in columns]
            rows.append({"decile": i + 1, "cells": cells})
        return rows


def _test_rows_sha256(version: ModelVersion) -> str | None:
    validations = version.validations or {}
    return (validations.get(validations.get("trained_on") or "") or {}).get("test_rows_sha256")


def _seconds(version: ModelVersion) -> float | None:
    if version.started_at and version.trained_at:
        return round((version.trained_at - version.started_at).total_seconds(), 3)
    return None


def model_group_leaderboard(*, versions: list[ModelVersion]) -> Leaderboard:
    """The leaderboard of ``versions`` (one training group, already restricted to what
    the caller may see, in the order to show)."""
    group = versions[0].training_group if versions else None
    board = Leaderboard(group=str(group) if group else None)
    trained = [v for v in versions if v.status in COMPARABLE and v.artifact_name and v.metrics]
    hashes = {_test_rows_sha256(v) for v in trained}
    board.same_rows = len(hashes) <= 1 and None not in hashes
    rescored: dict[int, dict] = {}
    comparison = None
    if trained and not board.same_rows and len(trained) <= MAX_COMPARED:
        try:
            comparison = model_versions_compare(candidate=trained[0], others=trained[1:])
        except ComparisonError:  # rows with and without history differ: the stored figures, not same_rows
            comparison = None
    if comparison is not None:
        rescored = {entry.version.pk: entry.metrics for entry in comparison.entries}
        board.source, board.same_rows, board.test_rows = "rescored", True, comparison.rows
        if comparison.baseline is not None:
            board.baseline, board.baseline_version = _figures(comparison.baseline), trained[0]
    elif trained:
        board.test_rows_sha256 = next(iter(hashes)) if board.same_rows else None
        board.test_rows = (trained[0].metrics.get("test") or {}).get("n")
        # The baseline of the first static-only version: the networks' encoding of the same columns.
        fitted_with = next((v for v in trained if not v.family.needs_history), trained[0])
        board.baseline = _figures((fitted_with.baseline_metrics or {}).get("test"))
        board.baseline_version = fitted_with
    for version in versions:
        is_trained = version in trained
        timing = (version.metrics or {}).get("timing") or {}
        metrics = rescored.get(version.pk) or (version.metrics or {}).get("test")
        board.entries.append(
            LeaderboardEntry(
                version=version,
                metrics=_figures(metrics) if is_trained else None,
                fit_seconds=timing.get("fit_seconds"),
                training_seconds=_seconds(version),
                explained_rows_per_s=timing.get("explained_rows_per_s"),
            )
        )
    return board
