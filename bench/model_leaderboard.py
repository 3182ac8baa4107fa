"""Every registered model family side by side, with the logistic baseline, on the same rows.

German credit: 5-fold stratified CV, the same folds for every family; inside each
fold the same train / validation / calibration rows (70/15/15). Synthetic: the
generator's applicants (``--rows``, default 100,000), one stratified 70/30 split.
For each family: AUC (mean ± sd over folds), Gini, KS, Brier, fit seconds and
explained rows per second (exact explanations, ``CreditDecider.decide``). The
logistic baseline is fitted on the same training rows, on the MLP's encoding.

    .venv/bin/python bench/model_leaderboard.py [--rows 100000] [--families mlp,trees]
    # writes bench/results/model_leaderboard.json

The harder synthetic mode of issue #11 (thresholds, interactions, vintages, a leak)
is not in the generator yet: the synthetic figures are on the current generator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.families import family_of  # noqa: E402
from models.features import StaticPipeline, target_vector  # noqa: E402
from models.metrics import evaluate  # noqa: E402
from models.reasons import CreditDecider, background_sample  # noqa: E402
from models.scaling import PointsScale  # noqa: E402
from models.splits import stratified_kfold, stratified_split  # noqa: E402
from models.training import CreditData  # noqa: E402

INNER = {"train": 0.7, "validation": 0.15, "calibration": 0.15}
RESULTS = ROOT / "bench/results/model_leaderboard.json"


def _figures(y, pd_) -> dict:
    report = evaluate(y, pd_)
    return {k: report[k] for k in ("auc", "gini", "ks", "brier") if k in report}


def _logistic(schema, frame, y, train, test) -> dict:
    from sklearn.linear_model import LogisticRegression

    pipeline = StaticPipeline(schema).fit(frame.iloc[train])
    model = LogisticRegression(max_iter=5000).fit(pipeline.transform(frame.iloc[train]), y[train])
    return _figures(y[test], model.predict_proba(pipeline.transform(frame.iloc[test]))[:, 1])


def _one(kind, schema, frame, y, train_rows, test_rows, seed) -> dict:
    data = CreditData(frame.iloc[train_rows].reset_index(drop=True), y[train_rows])
    parts = stratified_split(data.y, seed=seed, fractions=INNER)
    split = {name: data.subset(index) for name, index in parts.items()}
    started = time.perf_counter()
    model = family_of(kind).build(seed=seed, num_threads=1).fit(
        split["train"].static, split["train"].y, schema=schema,
        validation=split["validation"], calibration=split["calibration"],
    )  # fmt: skip
    fit_seconds = time.perf_counter() - started
    test = frame.iloc[test_rows].reset_index(drop=True)
    figures = _figures(y[test_rows], model.predict_pd(test))
    decider = CreditDecider(
        model, background_sample(model, split["train"].static, seed=seed),
        scale=PointsScale(), approve_min_score=600, decline_below_score=500,
    ).fit()  # fmt: skip
    sample = test.iloc[: min(len(test), 5000)]
    started = time.perf_counter()
    decisions = decider.decide(sample)
    explain_seconds = time.perf_counter() - started
    return {**figures, "fit_seconds": fit_seconds, "explained_rows_per_s": len(sample) / explain_seconds,
            "additivity_max": float(decisions.additivity_error().max())}  # fmt: skip


def _summary(runs: list[dict]) -> dict:
    out = {}
    for key in runs[0]:
        values = np.array([r[key] for r in runs], dtype=float)
        out[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--families", default="mlp,trees")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    kinds = args.families.split(",")
    import pandas as pd

    results: dict = {"load_average": os.getloadavg(), "families": kinds}
    schema = json.loads((ROOT / "scoring/demo/german_credit.schema.json").read_text())
    frame = pd.read_csv(ROOT / "scoring/demo/german_credit.csv")
    y = target_vector(frame, schema)
    folds = list(stratified_kfold(y, n_splits=5, seed=0))
    german = {kind: [] for kind in [*kinds, "logistic"]}
    for k, (train, test) in enumerate(folds):
        for kind in kinds:
            german[kind].append(_one(kind, schema, frame, y, train, test, seed=k))
        german["logistic"].append(_logistic(schema, frame, y, train, test))
    results["german_5fold"] = {kind: _summary(runs) for kind, runs in german.items()}
    if not args.skip_synthetic:
        from models.synthetic import generate_all

        schema = json.loads((ROOT / "scoring/demo/synthetic.schema.json").read_text())
        frame = generate_all(args.rows, seed=11).applicants
        y = target_vector(frame, schema)
        parts = stratified_split(y, seed=0, fractions={"train": 0.7, "test": 0.3})
        synthetic = {kind: _one(kind, schema, frame, y, parts["train"], parts["test"], seed=0) for kind in kinds}
        synthetic["logistic"] = _logistic(schema, frame, y, parts["train"], parts["test"])
        results["synthetic"] = {"rows": args.rows, **synthetic}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
