"""100k synthetic applicants: the MLP (static), the CNN (static + history), LightGBM, logistic.

One seeded portfolio (``models/synthetic.py``), one stratified split
(train 60 / validation 15 / calibration 10 / test 15), the same rows for every model.
LightGBM (a bench-only dependency) gets the raw static columns plus the history
flattened (months x channels) and stops early on the validation rows. The "oracle"
row scores the test rows with the generator's own default logit: the best AUC any
model can reach on these data.

Epoch times: the mean over the fitted epochs on the 60k training rows, and a
separate timing run of a few epochs over all 100k applicants (the acceptance figure:
CNN <= 3 s per epoch on a 2-core CPU). Other processes on the machine inflate them;
the JSON keeps every epoch's time.

    .venv/bin/python bench/synthetic_models.py     # writes bench/results/synthetic_models.json
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

from models import synthetic  # noqa: E402
from models.features import target_vector  # noqa: E402
from models.metrics import auc, decile_table  # noqa: E402
from models.splits import stratified_split  # noqa: E402
from models.training import CreditModel  # noqa: E402

N = 100_000
DATA_SEED = 1
SPLIT_SEED = 0
MODEL_SEED = 0
SCHEMA = ROOT / "scoring/demo/synthetic.schema.json"
RESULTS = ROOT / "bench/results/synthetic_models.json"
TIMING_EPOCHS = 3


def _lightgbm_pd(schema, applicants, history, y, train, validation, test, seed):
    x = schema_frame(schema, applicants)
    months = history.shape[1]
    flat = pd.DataFrame(
        history.reshape(len(history), -1),
        columns=[f"{ch}_m{m - months}" for m in range(months) for ch in synthetic.HISTORY_CHANNELS],
        index=applicants.index,
    )
    x = pd.concat([x, flat], axis=1)
    return fit_predict(
        x, y, train, validation, test, seed=seed, rounds=3000, learning_rate=0.05, num_leaves=31, min_data_in_leaf=50
    )


def run() -> dict:
    schema = json.loads(SCHEMA.read_text())
    portfolio = synthetic.generate_all(N, seed=DATA_SEED)
    applicants, history = portfolio.applicants, portfolio.history
    y = target_vector(applicants, schema)
    parts = stratified_split(y, seed=SPLIT_SEED)
    train, validation, calibration, test = (parts[p] for p in ("train", "validation", "calibration", "test"))

    def data(index, with_history):
        return (applicants.iloc[index], y[index], history[index] if with_history else None)

    rows: dict[str, dict] = {}
    models = {}
    for kind in ("mlp", "cnn"):
        cnn = kind == "cnn"
        started = time.perf_counter()
        model = CreditModel(kind, seed=MODEL_SEED).fit(
            applicants.iloc[train],
            y[train],
            schema=schema,
            history=history[train] if cnn else None,
            validation=data(validation, cnn),
            calibration=data(calibration, cnn),
        )
        fit_seconds = time.perf_counter() - started
        pd_test = model.predict_pd(applicants.iloc[test], history[test] if cnn else None)
        models[kind] = model
        rows[kind] = {
            "auc": auc(y[test], pd_test),
            "epochs": model.n_epochs_,
            "best_epoch": model.best_epoch_,
            "batch_size": model.batch_size_,
            "seconds_per_epoch": model.seconds_per_epoch_,
            "seconds_per_epoch_median": float(np.median([e["seconds"] for e in model.epochs_])),
            "fit_seconds": fit_seconds,
            "device": model.device_,
            "deciles": decile_table(y[test], pd_test),
        }

    transform = models["mlp"].static_pipeline_.transform
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    logistic = LogisticRegression(C=1.0, max_iter=5000).fit(transform(applicants.iloc[train]), y[train])
    rows["logistic"] = {
        "auc": auc(y[test], logistic.predict_proba(transform(applicants.iloc[test]))[:, 1]),
        "fit_seconds": time.perf_counter() - started,
    }

    started = time.perf_counter()
    pd_lgb, best_iteration = _lightgbm_pd(schema, applicants, history, y, train, validation, test, MODEL_SEED)
    rows["lightgbm"] = {
        "auc": auc(y[test], pd_lgb),
        "best_iteration": best_iteration,
        "fit_seconds": time.perf_counter() - started,
    }
    rows["oracle"] = {"auc": auc(y[test], synthetic.default_logit(applicants.iloc[test], history[test]))}

    # Epoch time over all 100k applicants (validation/calibration rows passed separately).
    timing = {}
    for kind in ("mlp", "cnn"):
        cnn = kind == "cnn"
        model = CreditModel(kind, seed=MODEL_SEED, max_epochs=TIMING_EPOCHS, patience=TIMING_EPOCHS).fit(
            applicants,
            y,
            schema=schema,
            history=history if cnn else None,
            validation=data(validation, cnn),
            calibration=data(calibration, cnn),
        )
        timing[kind] = {
            "rows": N,
            "batch_size": model.batch_size_,
            "epoch_seconds": [e["seconds"] for e in model.epochs_],
            "epoch_seconds_median": float(np.median([e["seconds"] for e in model.epochs_])),
        }

    return {
        "dataset": f"synthetic, n={N}, data seed {DATA_SEED}, default rate {y.mean():.4f}",
        "split": {p: len(i) for p, i in parts.items()},
        "models": rows,
        "epoch_timing_100k": timing,
        "torch_threads": models["cnn"].num_threads_,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "cnn_minus_mlp_auc": rows["cnn"]["auc"] - rows["mlp"]["auc"],
        "cnn_minus_lightgbm_auc": rows["cnn"]["auc"] - rows["lightgbm"]["auc"],
    }


def _write(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def main() -> None:
    result = run()
    print(result["dataset"], "| test rows:", result["split"]["test"])
    print(f"{'model':<10} {'test AUC':>9} {'s/epoch (60k)':>14} {'s/epoch (100k)':>15} {'epochs':>7}")
    for name, row in result["models"].items():
        timing = result["epoch_timing_100k"].get(name, {})
        per_epoch = f"{row['seconds_per_epoch']:.2f}" if "seconds_per_epoch" in row else "-"
        per_epoch_100k = f"{timing['epoch_seconds_median']:.2f}" if timing else "-"
        print(f"{name:<10} {row['auc']:>9.4f} {per_epoch:>14} {per_epoch_100k:>15} {row.get('epochs', '-'):>7}")
    cnn_mlp, cnn_lgb = result["cnn_minus_mlp_auc"], result["cnn_minus_lightgbm_auc"]
    cnn_epoch = result["epoch_timing_100k"]["cnn"]["epoch_seconds_median"]
    print(f"CNN - MLP AUC:      {cnn_mlp:+.4f} (target: clearly > 0)   -> {'OK' if cnn_mlp > 0.02 else 'MISSED'}")
    print(f"CNN - LightGBM AUC: {cnn_lgb:+.4f} (target: >= -0.005)     -> {'OK' if cnn_lgb >= -0.005 else 'MISSED'}")
    print(f"CNN epoch on 100k:  {cnn_epoch:.2f} s (target: <= 3 s)       -> {'OK' if cnn_epoch <= 3 else 'MISSED'}")
    print(f"load average at the end: {result['load_average_at_end']}")
    _write(result, RESULTS)
    print(f"written {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
