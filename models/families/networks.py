"""The network families: ``mlp`` (static features) and ``cnn`` (static + repayment history).

Both are ``models.training.CreditModel``; explanations are DeepSHAP (DeepLIFT rescale
rule, ``models.explain``) on the encoded inputs, grouped back to each source feature
(one-hot columns summed into their feature, history summed per channel into the
last six months and the months before).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import torch

from models import artifacts
from models.explain import DeepExplainer
from models.families.base import Family
from models.params import ParamSpec

BACKGROUND_ROWS = 100
RECENT_MONTHS = 6


def _common_space() -> dict[str, ParamSpec]:
    # The bounds are the service's limits on work (scoring.services.hyperparams asks
    # these specs for every entry point): wide enough for any sensible fit, narrow
    # enough that no request ties a worker up for days or fills its memory.
    specs = [
        ParamSpec("dropout", "float", 0.2, 0.0, 0.9, help="dropout after each hidden layer"),
        ParamSpec("lr", "float", 1e-3, 1e-6, 1.0, log=True, help="AdamW learning rate"),
        ParamSpec("weight_decay", "float", 0.1, 0.0, 10.0, help="AdamW decoupled weight decay"),
        ParamSpec("batch_size", "int", None, 16, 8192, nullable=True, help="rows per step; None: an eighth of the rows, 32..1024"),
        ParamSpec("max_epochs", "int", 200, 1, 500),
        ParamSpec("patience", "int", 10, 1, 100, help="epochs without validation-AUC gain before stopping"),
        ParamSpec("pos_weight", "float", "balanced", 0.01, 1000.0, nullable=True, literals=("balanced",),
                  help='"balanced", None or a weight of the positive class'),
        ParamSpec("clip", "float", 5.0, 0.5, 100.0, help="standardised numbers are clipped to ±clip"),
        ParamSpec("min_category_count", "int", 1, 1, 100_000, help="rarer categories become 'other'"),
        ParamSpec("validation_fraction", "float", 0.15, 0.05, 0.4, help="carved for early stopping"),
        ParamSpec("calibration_fraction", "float", 0.15, 0.05, 0.4, help="carved for Platt scaling"),
        ParamSpec("seed", "int", 0, 0, 2**31 - 1),
        ParamSpec("device", "device", "auto"),
        ParamSpec("num_threads", "int", None, 1, 64, nullable=True, help="CPU threads; None: the CPUs less one"),
    ]  # fmt: skip
    return {spec.name: spec for spec in specs}


class _NetworkExplainer:
    """DeepSHAP for a ``CreditModel``, lock-free across threads.

    ``DeepExplainer`` hooks its private model copy while it explains, so one instance
    serves one call at a time: each thread gets its own, fitted on first use (a copy
    of a small network and one pass over the background, a few milliseconds)."""

    def __init__(self, model: Any, background: dict[str, np.ndarray]) -> None:
        self.model = model
        self._inputs = tuple(torch.from_numpy(background[f"input{i}"]) for i in range(len(background)))
        self._local = threading.local()
        first = self._for_thread()
        self.expected_value_ = first.expected_value_
        self.static_groups_ = list(dict.fromkeys(model.feature_sources_))
        months = model.history_pipeline_.months_ if model.history_pipeline_ is not None else 0
        from models.reasons import history_groups

        self.groups_ = self.static_groups_ + (history_groups(months) if months else [])
        sources = model.feature_sources_
        index = {name: g for g, name in enumerate(self.static_groups_)}
        self._membership = np.zeros((len(sources), len(self.static_groups_)))
        self._membership[np.arange(len(sources)), [index[s] for s in sources]] = 1.0

    def _for_thread(self) -> DeepExplainer:
        explainer = getattr(self._local, "explainer", None)
        if explainer is None:
            explainer = self._local.explainer = DeepExplainer(self.model.network_, self._inputs).fit()
        return explainer

    def group(self, attributions: tuple[np.ndarray, ...]) -> np.ndarray:
        parts = [attributions[0] @ self._membership]
        if len(attributions) > 1:
            history = attributions[1]  # (n, C, T), oldest month first
            recent = history[:, :, -RECENT_MONTHS:].sum(axis=2)
            columns = []
            for c in range(history.shape[1]):
                columns.append(recent[:, c])
                if history.shape[2] > RECENT_MONTHS:
                    columns.append(history[:, c, :-RECENT_MONTHS].sum(axis=1))
            parts.append(np.stack(columns, axis=1))
        return np.hstack(parts)

    def explain(self, static, history=None, history_mask=None) -> tuple[np.ndarray, np.ndarray]:
        explanation = self._for_thread().explain(self.model.transform(static, history, history_mask))
        return explanation.output, self.group(explanation.attributions)


class NetworkFamily(Family):
    kind: str
    accelerators = ("cuda",)

    def build(self, **hyperparameters: Any) -> Any:
        from models.training import CreditModel

        return CreditModel(self.kind, **hyperparameters)

    def load(self, source: artifacts.Source, sha256: str, *, device: str = "cpu") -> Any:
        from models.training import CreditModel

        return CreditModel.load(source, sha256, device=device)

    def background(self, model, static: pd.DataFrame, history=None, history_mask=None, *, seed: int):
        n = len(static)
        rows = np.sort(np.random.default_rng(seed).choice(n, size=min(BACKGROUND_ROWS, n), replace=False))
        history_rows = None if history is None else history[rows]
        mask_rows = None if history_mask is None else history_mask[rows]
        tensors = model.transform(static.iloc[rows].reset_index(drop=True), history_rows, mask_rows)
        return {f"input{i}": t.numpy() for i, t in enumerate(tensors)}

    def explainer(self, model, background):
        return _NetworkExplainer(model, background)

    def baseline_inputs(self, model, static, history=None, history_mask=None) -> np.ndarray:
        encoded = model.static_pipeline_.transform(static)
        if model.history_pipeline_ is None:
            return encoded
        h = model.history_pipeline_.transform(history, history_mask)
        return np.hstack([encoded, h.reshape(len(h), -1)])

    def max_epochs(self, hyperparameters: dict[str, Any]) -> int | None:
        return int(hyperparameters.get("max_epochs") or self.space()["max_epochs"].default)

    def _common_search(self, trial) -> dict[str, Any]:
        return {
            "dropout": trial.suggest_float("dropout", 0.0, 0.4),
            "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [256, 512, 1024]),
        }


class MLPFamily(NetworkFamily):
    name = kind = "mlp"
    label = "MLP on static features"
    needs_history = False

    def space(self) -> dict[str, ParamSpec]:
        return {
            "hidden": ParamSpec("hidden", "int_list", None, 2, 512, max_length=4, nullable=True,
                                help="hidden layer widths, 1 to 4 of 2..512; None: one layer of 32"),
            **_common_space(),
        }  # fmt: skip

    def search_space(self, trial) -> dict[str, Any]:
        params = self._common_search(trial)
        width = trial.suggest_categorical("width", [16, 32, 64, 128])
        depth = trial.suggest_int("depth", 1, 3)
        params["hidden"] = [max(width // (2**i), 8) for i in range(depth)]
        return params


class CNNFamily(NetworkFamily):
    name = kind = "cnn"
    label = "CNN on repayment history + static features"
    needs_history = True

    def space(self) -> dict[str, ParamSpec]:
        return {
            "hidden": ParamSpec(
                "hidden", "int", None, 2, 256, nullable=True, help="branch and head width, 2..256; None: 32"
            ),
            "conv_channels": ParamSpec("conv_channels", "int_list", [16, 32], 1, 256, max_length=4),
            "kernel_size": ParamSpec("kernel_size", "choice", 3, choices=(1, 3, 5, 7, 9, 11)),
            "bucket_months": ParamSpec("bucket_months", "int", 6, 1, 24, help="must divide the history months"),
            **_common_space(),
        }

    def search_space(self, trial) -> dict[str, Any]:
        params = self._common_search(trial)
        params["hidden"] = trial.suggest_categorical("hidden", [16, 32, 64])
        return params
