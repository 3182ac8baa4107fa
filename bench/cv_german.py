"""German credit, 5-fold stratified CV: the MLP against a logistic baseline and LightGBM.

Every model sees the same folds and, inside each fold, the same train / validation /
calibration rows (70/15/15 of the fold's training part, stratified, seeded). The
logistic regression is fitted on the MLP's transformed static features (train rows;
a second row fits it on all the fold's training rows, as one would in practice).
LightGBM (a bench-only dependency) gets the raw columns with pandas categories and
stops early on the same validation rows.

Costs use the documented matrix: 5 per bad applicant accepted, 1 per good one
rejected. "best" picks the cut-off on the test fold itself (optimistic, the usual
published figure); "bayes" approves PD <= 1/6, the cost-optimal rule for calibrated
PDs, fixed in advance.

    .venv/bin/python bench/cv_german.py            # writes bench/results/cv_german.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _lightgbm import fit_predict, schema_frame  # noqa: E402  (bench/ is on sys.path)

from models.features import target_vector  # noqa: E402
from models.metrics import GERMAN_CREDIT_COSTS, auc, best_cutoff, expected_cost  # noqa: E402
from models.splits import stratified_kfold, stratified_split  # noqa: E402
from models.training import CreditModel  # noqa: E402

SEED = 0
N_FOLDS = 5
INNER = {"train": 0.7, "validation": 0.15, "calibration": 0.15}
DATA = ROOT / "scoring/demo/german_credit.csv"
SCHEMA = ROOT / "scoring/demo/german_credit.schema.json"
RESULTS = ROOT / "bench/results/cv_german.json"


def _lightgbm_pd(schema, frame, y, train, validation, test, seed):
    x = schema_frame(schema, frame)
    pd_, _ = fit_predict(
        x, y, train, validation, test, seed=seed, rounds=2000, learning_rate=0.02, num_leaves=8, min_data_in_leaf=20
    )
    return pd_


def _logistic_pd(x_train, y_train, x_test, C=1.0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=5000).fit(x_train, y_train).predict_proba(x_test)[:, 1]


def run(mlp_params: dict | None = None, *, with_lightgbm: bool = True, seed: int = SEED) -> dict:
    schema = json.loads(SCHEMA.read_text())
    frame = pd.read_csv(DATA)
    y = target_vector(frame, schema)
    mlp_params = mlp_params or {}
    pds: dict[str, np.ndarray] = {}
    per_fold: dict[str, list] = {}
    seconds: dict[str, float] = {}

    def record(name, fold_test, pd_test, elapsed):
        pds.setdefault(name, np.zeros(len(y)))[fold_test] = pd_test
        per_fold.setdefault(name, []).append(auc(y[fold_test], pd_test))
        seconds[name] = seconds.get(name, 0.0) + elapsed

    for k, (outer_train, test) in enumerate(stratified_kfold(y, n_splits=N_FOLDS, seed=seed)):
        inner = stratified_split(y[outer_train], seed=seed + k, fractions=INNER)
        train, validation, calibration = (outer_train[inner[p]] for p in ("train", "validation", "calibration"))

        started = time.perf_counter()
        mlp = CreditModel("mlp", seed=seed + k, **mlp_params).fit(
            frame.iloc[train],
            y[train],
            schema=schema,
            validation=(frame.iloc[validation], y[validation]),
            calibration=(frame.iloc[calibration], y[calibration]),
        )
        record("mlp", test, mlp.predict_pd(frame.iloc[test]), time.perf_counter() - started)

        transform = mlp.static_pipeline_.transform
        started = time.perf_counter()
        record(
            "logistic",
            test,
            _logistic_pd(transform(frame.iloc[train]), y[train], transform(frame.iloc[test])),
            time.perf_counter() - started,
        )
        started = time.perf_counter()
        record(
            "logistic_all_rows",
            test,
            _logistic_pd(transform(frame.iloc[outer_train]), y[outer_train], transform(frame.iloc[test])),
            time.perf_counter() - started,
        )
        if with_lightgbm:
            started = time.perf_counter()
            record(
                "lightgbm",
                test,
                _lightgbm_pd(schema, frame, y, train, validation, test, seed + k),
                time.perf_counter() - started,
            )

    rows = {}
    for name, aucs in per_fold.items():
        fold_costs_best = []
        fold_costs_bayes = []
        for _, test in stratified_kfold(y, n_splits=N_FOLDS, seed=seed):
            fold_costs_best.append(best_cutoff(y[test], pds[name][test], GERMAN_CREDIT_COSTS)["per_applicant"])
            fold_costs_bayes.append(
                expected_cost(y[test], pds[name][test], GERMAN_CREDIT_COSTS.bayes_cutoff)["per_applicant"]
            )
        rows[name] = {
            "auc_mean": float(np.mean(aucs)),
            "auc_sd": float(np.std(aucs, ddof=1)),
            "auc_per_fold": [float(a) for a in aucs],
            "cost_per_applicant_best_cutoff": float(np.mean(fold_costs_best)),
            "cost_per_applicant_bayes_cutoff": float(np.mean(fold_costs_bayes)),
            "seconds": seconds[name],
        }
    return {
        "dataset": "german_credit (1000 applicants, 30% bad)",
        "folds": N_FOLDS,
        "seed": seed,
        "inner_split": INNER,
        "cost_matrix": {
            "bad_accepted": GERMAN_CREDIT_COSTS.bad_accepted,
            "good_rejected": GERMAN_CREDIT_COSTS.good_rejected,
        },
        "mlp_hyper_parameters": CreditModel("mlp", **mlp_params).get_params(),
        "models": rows,
        "mlp_minus_logistic_auc": rows["mlp"]["auc_mean"] - rows["logistic"]["auc_mean"],
    }


def _write(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def main() -> None:
    result = run()
    print(
        f"German credit, {N_FOLDS}-fold stratified CV (seed {SEED}); cost per applicant, 5 per bad accepted, 1 per good rejected"
    )
    print(f"{'model':<20} {'AUC mean':>9} {'± sd':>7} {'cost@best':>10} {'cost@1/6':>9} {'seconds':>8}")
    for name, row in result["models"].items():
        print(
            f"{name:<20} {row['auc_mean']:>9.4f} {row['auc_sd']:>7.4f} "
            f"{row['cost_per_applicant_best_cutoff']:>10.4f} {row['cost_per_applicant_bayes_cutoff']:>9.4f} "
            f"{row['seconds']:>8.1f}"
        )
    gap = result["mlp_minus_logistic_auc"]
    print(f"MLP - logistic AUC: {gap:+.4f} (target: >= -0.01) -> {'OK' if gap >= -0.01 else 'MISSED'}")
    _write(result, RESULTS)
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
