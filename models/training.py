"""``CreditModel``: the estimator that fits a pipeline, a network and a calibration.

Typical use::

    model = CreditModel(kind="cnn", seed=7).fit(static, y, history=h, history_mask=m, schema=schema)
    pd = model.predict_pd(new_static, history=new_h, history_mask=new_m)
    sha256 = model.save("var/models/v3.pt")
    model = CreditModel.load("var/models/v3.pt", sha256)

``kind="mlp"`` uses the static application features only; ``kind="cnn"`` adds the
monthly repayment history. Training is seeded and deterministic on the CPU (same
data, seed and thread count: identical weights), uses CUDA with bf16 autocast when
available, stops early on validation AUC (keeping the best weights) and ends with
Platt scaling on a held-out calibration split. It never changes the caller's global
torch state: RNG, deterministic-algorithm flag and thread count are restored.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from models import artifacts
from models.calibration import PlattCalibrator
from models.features import HistoryPipeline, StaticPipeline
from models.metrics import GERMAN_CREDIT_COSTS, CostMatrix, auc, evaluate
from models.networks import CreditCNN, CreditMLP
from models.splits import stratified_split

KINDS = ("mlp", "cnn")  # the kinds CreditModel builds; the registry of all kinds is models.families
PREDICT_BATCH = 8192
MIN_DELTA = 1e-4  # a validation AUC gain smaller than this does not reset the patience

EpochCallback = Callable[[int, float, float], None]


@dataclass
class CreditData:
    """One split of applicants: static columns, outcome (1 = default) and, for the CNN,
    the history (n, months, 3) with its mask (n, months; True where the month has data)."""

    static: pd.DataFrame
    y: np.ndarray
    history: np.ndarray | None = None
    history_mask: np.ndarray | None = None

    @classmethod
    def of(cls, value: CreditData | Sequence[Any]) -> CreditData:
        """A ``CreditData`` from itself or a tuple ``(static, y[, history[, history_mask]])``."""
        if isinstance(value, CreditData):
            return value
        return cls(*value)

    def subset(self, index: np.ndarray) -> CreditData:
        return CreditData(
            static=self.static.iloc[index].reset_index(drop=True),
            y=np.asarray(self.y)[index],
            history=None if self.history is None else self.history[index],
            history_mask=None if self.history_mask is None else self.history_mask[index],
        )


def _default_threads() -> int:
    """The CPUs this process may use, less one, within [1, 8].

    One core is left to the rest of the machine (web server, broker, the data
    pipeline): on a shared 2-core box, two OpenMP threads competing with other
    processes were measured at 2-25x slower per epoch than one thread, because each
    parallel region waits for its descheduled thread. These small networks gain
    nothing past a handful of threads.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available - 1, 8))


@contextmanager
def _torch_state(seed: int, device: torch.device, num_threads: int) -> Iterator[None]:
    """Seeded, deterministic, thread-limited torch; the caller's settings restored afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=devices):
        try:
            torch.manual_seed(seed)
            # cuBLAS needs CUBLAS_WORKSPACE_CONFIG for strict determinism: on CUDA, warn instead.
            torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
            torch.set_num_threads(num_threads)
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class CreditModel:
    """A credit default model: feature pipeline(s) + network + Platt calibration.

    Hyper-parameters (stored as given; defaults resolved in ``fit``):

    - ``kind``: "mlp" (static features) or "cnn" (static + repayment history).
    - ``hidden``: MLP layer widths (tuple) / CNN branch and head width (int); None = kind default.
    - ``dropout``, ``lr``, ``weight_decay`` (AdamW, decoupled), ``max_epochs``, ``patience``
      (epochs without validation-AUC gain before stopping).
    - ``batch_size``: None = an eighth of the training rows, within [32, 1024]. Small
      tabular data (German credit: 700 rows) needs many small steps; large data wants
      big batches for speed.
    The defaults were tuned on German credit (``bench/cv_german.py``): small and strongly
    regularised; they also hold on 100k synthetic applicants (``bench/synthetic_models.py``).
    - ``conv_channels``, ``kernel_size``, ``bucket_months``: the CNN's history branch.
    - ``pos_weight``: "balanced" (n_good / n_bad), a number, or None; Platt scaling
      afterwards undoes the shift it puts in the logit.
    - ``clip``, ``min_category_count``: the feature pipelines.
    - ``validation_fraction``, ``calibration_fraction``: carved (stratified, seeded) from
      the training data when ``fit`` gets no ``validation`` / ``calibration`` split.
    - ``seed``, ``device`` ("auto", "cpu", "cuda", "cuda:1"...), ``num_threads`` (None = the CPUs
      available less one, within [1, 8]).
    """

    # Learned in ``fit`` (or read by ``load``):
    network_: nn.Module
    network_args_: dict[str, Any]
    static_pipeline_: StaticPipeline
    history_pipeline_: HistoryPipeline | None
    calibrator_: PlattCalibrator
    device_: str
    batch_size_: int
    num_threads_: int
    pos_weight_: float
    epochs_: list[dict[str, float]]
    best_epoch_: int
    best_val_auc_: float
    n_epochs_: int
    seconds_per_epoch_: float
    n_train_: int
    n_validation_: int
    n_calibration_: int
    metrics_: dict[str, Any] | None  # only on a loaded model: the metrics saved with it

    def __init__(
        self,
        kind: str = "mlp",
        *,
        hidden: int | Sequence[int] | None = None,
        dropout: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        batch_size: int | None = None,
        max_epochs: int = 200,
        patience: int = 10,
        conv_channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        bucket_months: int = 6,
        pos_weight: str | float | None = "balanced",
        clip: float = 5.0,
        min_category_count: int = 1,
        validation_fraction: float = 0.15,
        calibration_fraction: float = 0.15,
        seed: int = 0,
        device: str = "auto",
        num_threads: int | None = None,
    ):
        self.kind = kind
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.conv_channels = conv_channels
        self.kernel_size = kernel_size
        self.bucket_months = bucket_months
        self.pos_weight = pos_weight
        self.clip = clip
        self.min_category_count = min_category_count
        self.validation_fraction = validation_fraction
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.device = device
        self.num_threads = num_threads

    # -- scikit-learn style parameters ---------------------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> CreditModel:
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"unknown hyper-parameter {name!r}")
            setattr(self, name, value)
        return self

    def _json_params(self) -> dict[str, Any]:
        params = self.get_params()
        for name in ("hidden", "conv_channels"):
            if isinstance(params[name], Sequence):
                params[name] = [int(v) for v in params[name]]
        return params

    # -- fitting ----------------------------------------------------------------------

    def _network_args(self, n_static: int, months: int | None) -> dict[str, Any]:
        if self.kind == "mlp":
            hidden = (32,) if self.hidden is None else self.hidden
            hidden = [int(hidden)] if isinstance(hidden, int) else [int(h) for h in hidden]
            return {"n_features": n_static, "hidden": hidden, "dropout": float(self.dropout)}
        hidden = 32 if self.hidden is None else self.hidden
        if not isinstance(hidden, int):
            raise ValueError(f"a CNN's hidden is one width (int), got {hidden!r}")
        assert months is not None
        return {
            "n_static": n_static,
            "n_channels": 4,
            "months": int(months),
            "conv_channels": [int(c) for c in self.conv_channels],
            "kernel_size": int(self.kernel_size),
            "hidden": hidden,
            "dropout": float(self.dropout),
            "bucket_months": int(self.bucket_months),
        }

    @staticmethod
    def _build_network(kind: str, args: dict[str, Any]) -> nn.Module:
        return CreditMLP(**args) if kind == "mlp" else CreditCNN(**args)

    def _split(
        self, train: CreditData, validation: CreditData | None, calibration: CreditData | None
    ) -> tuple[CreditData, CreditData, CreditData]:
        if validation is not None and calibration is not None:
            return train, validation, calibration
        fractions = {}
        if validation is None:
            fractions["validation"] = self.validation_fraction
        if calibration is None:
            fractions["calibration"] = self.calibration_fraction
        fractions = {"train": 1.0 - sum(fractions.values()), **fractions}
        parts = stratified_split(train.y, seed=self.seed, fractions=fractions)
        return (
            train.subset(parts["train"]),
            validation if validation is not None else train.subset(parts["validation"]),
            calibration if calibration is not None else train.subset(parts["calibration"]),
        )

    def fit(
        self,
        static: pd.DataFrame,
        y: Any,
        *,
        schema: dict[str, Any],
        history: np.ndarray | None = None,
        history_mask: np.ndarray | None = None,
        validation: CreditData | Sequence[Any] | None = None,
        calibration: CreditData | Sequence[Any] | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> CreditModel:
        """Fit on ``static`` / ``y`` (1 = default); ``validation`` drives early stopping,
        ``calibration`` the Platt scaling; each is carved from the training data if not given.
        ``on_epoch(epoch, train_loss, val_auc)`` is called after every epoch."""
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "cnn") != (history is not None):
            raise ValueError("a CNN needs a history and an MLP takes none")
        train = CreditData(static, np.asarray(y, dtype=np.int64), history, history_mask)
        val = None if validation is None else CreditData.of(validation)
        cal = None if calibration is None else CreditData.of(calibration)
        train, val, cal = self._split(train, val, cal)
        if not set(np.unique(train.y)) == {0, 1}:
            raise ValueError("y must be 0/1 with both outcomes present (see models.features.target_vector)")

        self.static_pipeline_ = StaticPipeline(schema, clip=self.clip, min_category_count=self.min_category_count)
        self.static_pipeline_.fit(train.static)
        self.history_pipeline_ = None
        months = None
        if self.kind == "cnn":
            assert train.history is not None
            self.history_pipeline_ = HistoryPipeline(clip=self.clip).fit(train.history, train.history_mask)
            months = self.history_pipeline_.months_
        self.network_args_ = self._network_args(self.static_pipeline_.n_features_out_, months)
        self.device_ = str(_resolve_device(self.device))
        self.batch_size_ = int(self.batch_size or np.clip(len(train.y) // 8, 32, 1024))
        self.n_train_, self.n_validation_, self.n_calibration_ = len(train.y), len(val.y), len(cal.y)
        if self.pos_weight == "balanced":
            self.pos_weight_ = float((train.y == 0).sum() / max((train.y == 1).sum(), 1))
        else:
            self.pos_weight_ = 1.0 if self.pos_weight is None else float(self.pos_weight)

        self.num_threads_ = int(self.num_threads or _default_threads())
        with _torch_state(self.seed, torch.device(self.device_), self.num_threads_):
            self._train(self._arrays(train), train.y, self._arrays(val), val.y, on_epoch)
        self.calibrator_ = PlattCalibrator().fit(self._raw_logit(self._arrays(cal)), cal.y)
        return self

    def _arrays(self, data: CreditData) -> list[np.ndarray]:
        arrays = [self.static_pipeline_.transform(data.static)]
        if self.history_pipeline_ is not None:
            if data.history is None:
                raise ValueError("this model needs the repayment history")
            arrays.append(self.history_pipeline_.transform(data.history, data.history_mask))
        return arrays

    def _to_device(self, arrays: list[np.ndarray]) -> list[torch.Tensor]:
        device = torch.device(self.device_)
        tensors = [torch.from_numpy(a) for a in arrays]
        if device.type == "cuda":
            return [t.pin_memory().to(device, non_blocking=True) for t in tensors]
        return tensors

    def _train(
        self,
        x_train: list[np.ndarray],
        y_train: np.ndarray,
        x_val: list[np.ndarray],
        y_val: np.ndarray,
        on_epoch: EpochCallback | None,
    ) -> None:
        device = torch.device(self.device_)
        network = self._build_network(self.kind, self.network_args_).to(device)
        optimizer = torch.optim.AdamW(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(self.pos_weight_, device=device))
        inputs = self._to_device(x_train)
        target = self._to_device([y_train.astype(np.float32)])[0]
        n = len(y_train)
        generator = torch.Generator().manual_seed(self.seed)  # the shuffling order
        autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
        self.network_ = network
        self.epochs_ = []
        best_auc, best_state, best_epoch, waited = -math.inf, None, 0, 0
        for epoch in range(1, self.max_epochs + 1):
            started = time.perf_counter()
            network.train()
            order = torch.randperm(n, generator=generator).to(device)
            total = torch.zeros((), device=device)
            for begin in range(0, n, self.batch_size_):
                index = order[begin : begin + self.batch_size_]
                with autocast:
                    logit = network(*(x[index] for x in inputs))
                loss = criterion(logit.float(), target[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(index)  # stays on the device: no sync per batch
            train_loss = float(total) / n
            val_auc = auc(y_val, self._raw_logit(x_val))
            self.epochs_.append(
                {"epoch": epoch, "train_loss": train_loss, "val_auc": val_auc, "seconds": time.perf_counter() - started}
            )
            if on_epoch is not None:
                on_epoch(epoch, train_loss, val_auc)
            if val_auc > best_auc + MIN_DELTA:
                best_auc, best_epoch, waited = val_auc, epoch, 0
                best_state = copy.deepcopy(network.state_dict())
            else:
                waited += 1
                if waited >= self.patience:
                    break
        assert best_state is not None  # max_epochs >= 1 and the first epoch always improves on -inf
        network.load_state_dict(best_state)
        network.eval()
        self.best_epoch_ = best_epoch
        self.best_val_auc_ = best_auc
        self.n_epochs_ = len(self.epochs_)
        self.seconds_per_epoch_ = float(np.mean([e["seconds"] for e in self.epochs_]))

    # -- prediction ---------------------------------------------------------------------

    def _raw_logit(self, arrays: list[np.ndarray]) -> np.ndarray:
        network = self.network_
        device = torch.device(self.device_)
        was_training = network.training
        network.eval()
        out = []
        with torch.inference_mode():
            for begin in range(0, len(arrays[0]), PREDICT_BATCH):
                batch = [torch.from_numpy(a[begin : begin + PREDICT_BATCH]).to(device) for a in arrays]
                out.append(network(*batch).float().cpu().numpy())
        network.train(was_training)
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def transform(
        self, static: pd.DataFrame, history: np.ndarray | None = None, history_mask: np.ndarray | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The network's inputs as float32 CPU tensors: ``(x_static,)`` or ``(x_static, x_history)``;
        ``network_(*inputs)`` is the raw logit (what the explainer attributes)."""
        return tuple(torch.from_numpy(a) for a in self._arrays(CreditData(static, np.zeros(0), history, history_mask)))

    def predict_raw_logit(self, static, history=None, history_mask=None) -> np.ndarray:
        """The network's output before calibration, shape (n,)."""
        return self._raw_logit(self._arrays(CreditData(static, np.zeros(0), history, history_mask)))

    def predict_logit(self, static, history=None, history_mask=None) -> np.ndarray:
        """Calibrated log-odds of default (bad:good), shape (n,)."""
        return self.calibrator_.calibrated_logit(self.predict_raw_logit(static, history, history_mask))

    def predict_pd(self, static, history=None, history_mask=None) -> np.ndarray:
        """Calibrated probability of default, shape (n,)."""
        return self.calibrator_.pd(self.predict_raw_logit(static, history, history_mask))

    def predict_proba(self, static, history=None, history_mask=None) -> np.ndarray:
        """scikit-learn convention, shape (n, 2): [P(good), P(default)]."""
        pd_ = self.predict_pd(static, history, history_mask)
        return np.column_stack([1.0 - pd_, pd_])

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    @property
    def feature_names_(self) -> list[str]:
        """Names of the static input columns (the history adds channels ``history_pipeline_.feature_names_``)."""
        return self.static_pipeline_.feature_names_

    @property
    def feature_sources_(self) -> list[str]:
        """The schema feature each static input column comes from (to group attributions)."""
        return self.static_pipeline_.feature_sources_

    def evaluate(
        self, static, y, history=None, history_mask=None, *, costs: CostMatrix = GERMAN_CREDIT_COSTS
    ) -> dict[str, Any]:
        """``models.metrics.evaluate`` of this model's calibrated PDs."""
        return evaluate(y, self.predict_pd(static, history, history_mask), costs=costs)

    # -- persistence --------------------------------------------------------------------

    def to_config(self, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything but the weights, as plain JSON."""
        return {
            "kind": self.kind,
            "hyper_parameters": self._json_params(),
            "network": self.network_args_,
            "static_pipeline": self.static_pipeline_.to_dict(),
            "history_pipeline": None if self.history_pipeline_ is None else self.history_pipeline_.to_dict(),
            "calibration": self.calibrator_.to_dict(),
            "training": {
                "device": self.device_,
                "torch_version": torch.__version__,
                "pos_weight": self.pos_weight_,
                "batch_size": self.batch_size_,
                "num_threads": self.num_threads_,
                "best_epoch": self.best_epoch_,
                "best_val_auc": self.best_val_auc_,
                "n_epochs": self.n_epochs_,
                "seconds_per_epoch": self.seconds_per_epoch_,
                "n_train": self.n_train_,
                "n_validation": self.n_validation_,
                "n_calibration": self.n_calibration_,
                "epochs": self.epochs_,
            },
            "metrics": metrics,
        }

    def save(self, target: artifacts.Target, *, metrics: dict[str, Any] | None = None) -> str:
        """Write the artifact (atomically to a path, or to a binary file object); return its
        SHA-256 (record it: ``load`` needs it)."""
        return artifacts.write(target, self.to_config(metrics), self.network_.state_dict())

    @classmethod
    def load(cls, source: artifacts.Source, expected_sha256: str, *, device: str = "cpu") -> CreditModel:
        """A fitted model from a verified artifact: a path, its bytes or a binary file object
        (``ArtifactIntegrityError`` if the hash differs)."""
        config, state_dict = artifacts.read(source, expected_sha256)
        params = config["hyper_parameters"]
        for name in ("hidden", "conv_channels"):  # JSON has no tuples
            if isinstance(params[name], list):
                params[name] = tuple(params[name])
        model = cls(**params)
        model.device = device
        model.device_ = str(_resolve_device(device))
        model.static_pipeline_ = StaticPipeline.from_dict(config["static_pipeline"])
        history = config["history_pipeline"]
        model.history_pipeline_ = None if history is None else HistoryPipeline.from_dict(history)
        model.calibrator_ = PlattCalibrator.from_dict(config["calibration"])
        model.network_args_ = config["network"]
        network = cls._build_network(config["kind"], config["network"])
        network.load_state_dict(state_dict)
        model.network_ = network.to(model.device_).eval()
        training = config["training"]
        model.pos_weight_ = training["pos_weight"]
        model.batch_size_ = training["batch_size"]
        model.num_threads_ = training["num_threads"]
        model.best_epoch_ = training["best_epoch"]
        model.best_val_auc_ = training["best_val_auc"]
        model.n_epochs_ = training["n_epochs"]
        model.seconds_per_epoch_ = training["seconds_per_epoch"]
        model.n_train_ = training["n_train"]
        model.n_validation_ = training["n_validation"]
        model.n_calibration_ = training["n_calibration"]
        model.epochs_ = training["epochs"]
        model.metrics_ = config["metrics"]
        return model


def fit(kind: str, static: pd.DataFrame, y: Any, *, schema: dict[str, Any], **kwargs: Any) -> CreditModel:
    """``CreditModel(kind, **hyper_parameters).fit(...)``: keyword arguments that are
    hyper-parameters go to the constructor, the rest to ``fit``."""
    names = set(CreditModel(kind).get_params())
    params = {k: v for k, v in kwargs.items() if k in names}
    rest = {k: v for k, v in kwargs.items() if k not in names}
    return CreditModel(kind, **params).fit(static, y, schema=schema, **rest)
