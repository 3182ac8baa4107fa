"""Model versions compared on the same rows: the candidate's test split (rebuilt from
the portfolio's data and the candidate's seed, exactly as training carved it) scored by
every version compared, beside the logistic baseline fitted with the candidate. Stored
metrics of two versions come from two different splits (two seeds, or data imported
in between) and cannot be set side by side; these can."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scoring.models import ModelVersion
from scoring.services.errors import ConflictError

COMPARABLE = (ModelVersion.STATUS_TRAINED, ModelVersion.STATUS_APPROVED, ModelVersion.STATUS_CHAMPION,
              ModelVersion.STATUS_RETIRED)  # fmt: skip
MAX_COMPARED = 6


class ComparisonError(ConflictError):
    """These versions cannot be compared on the same rows."""

    code = "not_comparable"


@dataclass
class Compared:
    version: ModelVersion
    metrics: dict  # models.metrics.evaluate on the candidate's test rows
    # Test rows this version was trained on (its own split, another seed): its figures
    # there are in-sample and flatter it.
    trained_on_rows: int = 0


@dataclass
class Comparison:
    candidate: ModelVersion
    rows: int
    bad_rate: float
    same_data: bool  # the portfolio's rows are still those the candidate was trained on
    entries: list[Compared] = field(default_factory=list)
    baseline: dict | None = None  # the logistic baseline fitted on the candidate's train split


def model_versions_compare(*, candidate: ModelVersion, others: list[ModelVersion]) -> Comparison:
    """Score the candidate's test split with the candidate and each of ``others``."""
    from scoring.inference import model_load
    from scoring.services.training import training_data, training_split

    versions = [candidate, *[v for v in others if v.pk != candidate.pk]]
    if len(versions) > MAX_COMPARED:
        raise ComparisonError(f"Compare at most {MAX_COMPARED} versions at once.")
    for version in versions:
        if version.portfolio_id != candidate.portfolio_id:
            raise ComparisonError("Only versions of the same portfolio score the same rows.")
        if version.status not in COMPARABLE or not version.artifact_name:
            raise ComparisonError(f"Model v{version.version} has no trained artifact to score with.")
    data, y = training_data(portfolio=candidate.portfolio, kind=candidate.kind)
    same_data = data.fingerprint() == candidate.training_data_fingerprint
    reads_history = [v for v in versions if v.family.needs_history]
    if reads_history and not candidate.family.needs_history:
        with_history, _ = training_data(portfolio=candidate.portfolio, kind=reads_history[0].kind)
        if not np.array_equal(with_history.applicant_ids, data.applicant_ids):
            raise ComparisonError("The portfolio's rows with and without history differ: compare again later.")
        data = with_history
    test_index = training_split(data, y, seed=candidate.seed)[1]["test"]
    test, y_test = data.subset(test_index), y[test_index]
    comparison = Comparison(
        candidate=candidate, rows=len(y_test), bad_rate=float(y_test.mean()) if len(y_test) else 0.0,
        same_data=same_data, baseline=(candidate.baseline_metrics or {}).get("test") if same_data else None,
    )  # fmt: skip
    test_ids = set(data.applicant_ids[test_index].tolist())
    for version in versions:
        model = model_load(version)
        metrics = model.evaluate(y=y_test, **test.model_inputs(version.kind))
        trained_on = 0
        if version.seed != candidate.seed:
            own_train = set(data.applicant_ids[training_split(data, y, seed=version.seed)[1]["train"]].tolist())
            trained_on = len(test_ids & own_train)
        comparison.entries.append(Compared(version=version, metrics=metrics, trained_on_rows=trained_on))
    return comparison
