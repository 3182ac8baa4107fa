"""Explanation speed: shap.DeepExplainer against the vectorised DeepSHAP explainer.

For the credit MLP and CNN (a few training steps on synthetic data, so ReLUs are in
mixed states) and a background of 100 reference rows: rows explained per second,
the largest difference from shap's values, and the largest additivity error
(|sum of attributions + base value - output|, in log-odds) over every explained row,
float32 (with its float64 recheck of the rows that miss) and float64.
shap loops over rows in Python, so it runs on a sample.

    .venv/bin/python bench/explain_speed.py [--threads 2] [--repeats 3]

Prints a table and writes bench/results/explain_speed.json. Timings are the best
of ``--repeats`` runs: on a shared machine the best is the least disturbed one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import shap
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.explain import DeepExplainer  # noqa: E402
from models.networks import CreditCNN, CreditMLP  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "explain_speed.json"
N_MLP_FEATURES = 60
N_CNN_STATIC, CHANNELS, MONTHS = 40, 4, 24


class _Column(nn.Module):
    """shap's PyTorch explainer wants outputs of shape (n, k)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs).unsqueeze(1)


def make_inputs(n: int, *, history: bool, seed: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    static = torch.randn(n, N_CNN_STATIC if history else N_MLP_FEATURES, generator=g)
    logit = static[:, 0] - 0.5 * static[:, 1]
    if not history:
        return (static,), (logit > 0).float()
    hist = torch.randn(n, CHANNELS, MONTHS, generator=g)
    return (static, hist), (logit + hist[:, 2, -6:].mean(dim=1) > 0).float()


def trained(model: nn.Module, *, history: bool) -> nn.Module:
    inputs, labels = make_inputs(2_000, history=history, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(50):
        optimiser.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(*inputs), labels).backward()
        optimiser.step()
    return model.eval()


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_case(name, model, *, history, n_background, n_rows, n_shap_rows, repeats) -> dict:
    background, _ = make_inputs(n_background, history=history, seed=1)
    rows, _ = make_inputs(n_rows, history=history, seed=2)
    sample = tuple(x[:n_shap_rows] for x in rows)

    reference = shap.DeepExplainer(_Column(model), list(background) if history else background[0])
    shap_seconds, shap_values = best_time(
        lambda: reference.shap_values(list(sample) if history else sample[0], check_additivity=False), repeats
    )
    shap_values = [v[..., 0] for v in (shap_values if isinstance(shap_values, list) else [shap_values])]

    result = {"network": name, "background": n_background, "shap_rows": n_shap_rows, "rows": n_rows}
    result["shap_rows_per_s"] = n_shap_rows / shap_seconds
    for dtype in (torch.float32, torch.float64):
        label = str(dtype).removeprefix("torch.")
        explainer = DeepExplainer(model, background, dtype=dtype).fit()
        explainer.explain(tuple(x[:200] for x in rows))  # warm-up
        seconds, explanation = best_time(lambda explainer=explainer: explainer.explain(rows), repeats)
        ours = explainer.explain(sample)
        result[f"{label}_rows_per_s"] = n_rows / seconds
        result[f"{label}_speedup"] = result[f"{label}_rows_per_s"] / result["shap_rows_per_s"]
        result[f"{label}_max_diff_vs_shap"] = max(
            float(np.abs(a - b).max()) for a, b in zip(ours.attributions, shap_values, strict=True)
        )
        result[f"{label}_max_additivity_error"] = float(explanation.additivity_error().max())
    # float32 before the float64 recheck of the rows that miss additivity by more than its tolerance.
    raw = DeepExplainer(model, background, additivity_tolerance=None).explain(rows)
    exact_base = DeepExplainer(model, background, dtype=torch.float64).fit().expected_value_
    raw_error = np.abs(sum(a.reshape(n_rows, -1).sum(axis=1) for a in raw.attributions) + exact_base - raw.output)
    result["float32_unchecked_max_additivity_error"] = float(raw_error.max())
    result["float32_rows_rechecked_in_float64"] = int((raw_error > 5e-5).sum())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    mlp = trained(CreditMLP(N_MLP_FEATURES, hidden=(64, 32)), history=False)
    cnn = trained(CreditCNN(N_CNN_STATIC, n_channels=CHANNELS, months=MONTHS, conv_channels=(16, 32)), history=True)
    cases = [
        run_case(
            "CreditMLP", mlp, history=False, n_background=100, n_rows=20_000, n_shap_rows=200, repeats=args.repeats
        ),
        run_case("CreditCNN", cnn, history=True, n_background=100, n_rows=2_000, n_shap_rows=40, repeats=args.repeats),
        run_case("CreditCNN", cnn, history=True, n_background=50, n_rows=2_000, n_shap_rows=40, repeats=args.repeats),
    ]

    header = (
        f"{'network':<10} {'bg':>4} {'shap rows/s':>12} {'f32 rows/s':>11} {'speedup':>8} "
        f"{'f64 rows/s':>11} {'max|diff| f32':>14} {'add.err f32':>12} {'unchecked':>10} {'rechecked':>10} "
        f"{'add.err f64':>12}"
    )
    print(header)
    print("-" * len(header))
    for c in cases:
        print(
            f"{c['network']:<10} {c['background']:>4} {c['shap_rows_per_s']:>12,.0f} {c['float32_rows_per_s']:>11,.0f} "
            f"{c['float32_speedup']:>7.0f}x {c['float64_rows_per_s']:>11,.0f} {c['float32_max_diff_vs_shap']:>14.1e} "
            f"{c['float32_max_additivity_error']:>12.1e} {c['float32_unchecked_max_additivity_error']:>10.1e} "
            f"{c['float32_rows_rechecked_in_float64']:>10,} {c['float64_max_additivity_error']:>12.1e}"
        )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "torch": torch.__version__,
        "shap": shap.__version__,
        "threads": args.threads,
        "repeats": args.repeats,
        "cases": cases,
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
