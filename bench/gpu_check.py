"""GPU proof, for a machine with a CUDA device (one prepared script, minutes not hours):

    python bench/gpu_check.py [--count 200000] [--epochs 5]

Trains the MLP and the CNN on the same seeded synthetic applicants on the CPU and
on CUDA (bf16 autocast, pinned memory), then runs batch inference (PD) and the
vectorised explanation on both, and prints seconds and the speed-up. Writes
bench/results/gpu_check.json. Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.explain import DeepExplainer  # noqa: E402
from models.metrics import auc  # noqa: E402
from models.synthetic import generate_all  # noqa: E402
from models.training import CreditModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("No CUDA device here: nothing to prove. (The suite and the service run on the CPU.)")
        return
    schema = json.loads((ROOT / "scoring" / "demo" / "synthetic.schema.json").read_text())
    block = generate_all(args.count, seed=1)
    y = (block.applicants["defaulted"] == "yes").to_numpy().astype(int)
    n_train = int(0.8 * len(y))
    train, test = slice(0, n_train), slice(n_train, None)
    results: dict = {"device": torch.cuda.get_device_name(0), "count": args.count, "epochs": args.epochs}
    for kind in ("mlp", "cnn"):
        history = block.history if kind == "cnn" else None
        for device in ("cpu", "cuda"):
            model = CreditModel(kind, seed=1, max_epochs=args.epochs, patience=args.epochs, device=device)
            started = time.perf_counter()
            model.fit(block.applicants.iloc[train], y[train], schema=schema,
                      history=None if history is None else history[train])  # fmt: skip
            fit_s = time.perf_counter() - started
            static_test = block.applicants.iloc[test].reset_index(drop=True)
            history_test = None if history is None else history[test]
            started = time.perf_counter()
            pd_ = model.predict_pd(static_test, history_test)
            if device == "cuda":
                torch.cuda.synchronize()
            predict_s = time.perf_counter() - started
            inputs = model.transform(static_test, history_test)
            background = tuple(
                t[:100]
                for t in model.transform(block.applicants.iloc[:100], None if history is None else history[:100])
            )
            explainer = DeepExplainer(model.network_, background).fit()
            rows = min(20_000, len(static_test))
            started = time.perf_counter()
            explanation = explainer.explain(tuple(t[:rows] for t in inputs))
            explain_s = time.perf_counter() - started
            results[f"{kind}_{device}"] = {
                "fit_seconds": round(fit_s, 2),
                "seconds_per_epoch": round(model.seconds_per_epoch_, 3),
                "predict_rows_per_second": round(len(pd_) / predict_s),
                "explain_rows_per_second": round(rows / explain_s),
                "max_additivity_error": float(explanation.additivity_error().max()),
                "test_auc": round(auc(y[test], pd_), 4),
                "device_recorded": model.device_,
            }
            print(kind, device, results[f"{kind}_{device}"], flush=True)
        cpu, gpu = results[f"{kind}_cpu"], results[f"{kind}_cuda"]
        results[f"{kind}_speedup"] = {
            "training": round(cpu["seconds_per_epoch"] / gpu["seconds_per_epoch"], 2),
            "inference": round(gpu["predict_rows_per_second"] / cpu["predict_rows_per_second"], 2),
            "explanation": round(gpu["explain_rows_per_second"] / cpu["explain_rows_per_second"], 2),
        }
        print(kind, "speed-up over the CPU:", results[f"{kind}_speedup"], flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        "AUC gap CPU vs GPU:",
        {k: abs(results[f"{k}_cpu"]["test_auc"] - results[f"{k}_cuda"]["test_auc"]) for k in ("mlp", "cnn")},
    )
    assert np.isfinite([results[f"{k}_cuda"]["test_auc"] for k in ("mlp", "cnn")]).all()


if __name__ == "__main__":
    main()
