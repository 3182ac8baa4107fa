"""Every registered model family side by side, with the logistic baseline, on the same rows.

German credit: 5-fold stratified CV, the same folds for every family; inside each
fold the same train / validation / calibration rows (70/15/15). Synthetic: the
generator's applicants (``--rows``, default 100,000), one stratified 70/30 split.
For each family: AUC (mean ± sd over folds), Gini, KS, Brier, fit seconds and
explained rows per second (exact explanations, ``CreditDecider.decide``). The
logistic baseline is fitted on the same training rows, on the MLP's encoding.

Hard synthetic (``models.synthetic.generate_hard``, ``--hard-rows``, default 20,000
for a quick run; the figures of issue #11 are at ``--hard-rows 500000``): the
labelled applications, out of time (the newest months are the test, as training
splits a dated book), with the planted leak ``term_months`` left out of the inputs
(what a lender does once the leakage screen flags it); the screen's own flags and
seconds are reported too.

    .venv/bin/python bench/model_leaderboard.py [--rows 100000] [--hard-rows 20000] [--families mlp,trees]
        [--skip-german] [--skip-synthetic] [--skip-hard]
    # writes bench/results/model_leaderboard.json
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


def _hard(kinds: list[str], rows: int) -> dict:
    from models.features import input_columns
    from models.screen import screen
    from models.splits import out_of_time_split
    from models.synthetic import HARD_LEAK, generate_hard, hard_schema

    started = time.perf_counter()
    frame = generate_hard(rows, seed=11)
    generate_seconds = time.perf_counter() - started
    frame = frame[frame["defaulted"] != ""].reset_index(drop=True)
    schema = hard_schema()
    y = target_vector(frame, schema)
    dates = frame["application_date"].to_numpy(dtype="datetime64[D]")
    in_time = out_of_time_split(dates, fractions={"train": 0.85, "test": 0.15})
    assert in_time is not None
    categorical = [c["name"] for c in input_columns(schema) if c["role"] == "categorical"]
    started = time.perf_counter()
    train_static = frame.iloc[in_time["train"]][[c["name"] for c in input_columns(schema)]].reset_index(drop=True)
    flags = screen(train_static, y[in_time["train"]], categorical=categorical)
    screen_seconds = time.perf_counter() - started
    # The leak out of the inputs, as once the screen flagged it.
    schema["columns"] = [{**c, "role": "ignore"} if c["name"] == HARD_LEAK else c for c in schema["columns"]]
    out: dict = {"rows_generated": rows, "generate_seconds": generate_seconds, "labelled_rows": len(y),
                 "bad_rate": float(y.mean()), "test_dates": [str(dates[in_time["test"]].min()), str(dates[in_time["test"]].max())],
                 "screen_flagged": flags["flagged"], "screen_seconds": screen_seconds, "leak_dropped": HARD_LEAK}  # fmt: skip
    for kind in kinds:
        out[kind] = _one(kind, schema, frame, y, in_time["train"], in_time["test"], seed=0)
    out["logistic"] = _logistic(schema, frame, y, in_time["train"], in_time["test"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--families", default="mlp,trees")
    parser.add_argument("--hard-rows", type=int, default=20_000, help="hard synthetic rows (>= 500000 for the issue)")
    parser.add_argument("--skip-german", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-hard", action="store_true")
    args = parser.parse_args()
    kinds = args.families.split(",")
    import pandas as pd

    results: dict = {"load_average": os.getloadavg(), "families": kinds}
    if not args.skip_german:
        schema = json.loads((ROOT / "scoring/demo/german_credit.schema.json").read_text())
        frame = pd.read_csv(ROOT / "scoring/demo/german_credit.csv")
        y = target_vector(frame, schema)
        folds = list(stratified_kfold(y, n_splits=5, seed=0))
        german: dict[str, list] = {kind: [] for kind in [*kinds, "logistic"]}
        for k, (train, test) in enumerate(folds):
            for kind in kinds:
                german[kind].append(_one(kind, schema, frame, y, train, test, seed=k))
            german["logistic"].append(_logistic(schema, frame, y, train, test))
        results["german_5fold"] = {kind: _summary(runs) for kind, runs in german.items()}
    if not args.skip_hard:
        results["hard_synthetic"] = _hard(kinds, args.hard_rows)
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
