"""``trees``: gradient-boosted trees (LightGBM) on the static application features.

Why LightGBM: it is already the reference of our benchmarks, its CPU path is the
fastest of the two on 2 cores, it takes categorical columns natively (optimal
partitioning of the categories, no one-hot), declares monotone constraints per
feature, and its ``pred_contrib`` is exact TreeSHAP in raw log-odds computed by the
library itself. (XGBoost's wheel was not measured here: it is not installed.)

Inputs: every schema input column becomes one feature: numbers as floats (missing
stays NaN: the trees learn where missing goes), categories as integer codes of the
categories seen in training (unseen and missing -> NaN, LightGBM's "other" side).
``monotone`` on a numeric schema column (``1``/``"increasing"``: more never lowers
the default risk; ``-1``/``"decreasing"``) becomes a LightGBM monotone constraint.

Explanations: ``pred_contrib`` gives one contribution per feature plus the expected
value; each feature is one source column, so the grouping is the identity and the
sum equals the raw score to float64 precision (tested to 1e-6 on every row).

Artifact: JSON (no pickle) holding the config, the fitted encoding, the Platt
calibration and the booster as LightGBM's own text format (``model_to_string``),
hash-checked like every artifact.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from models import artifacts
from models.calibration import PlattCalibrator
from models.families.base import Family
from models.features import _as_category, _as_float, input_columns
from models.metrics import GERMAN_CREDIT_COSTS, CostMatrix, auc, evaluate
from models.params import ParamSpec
from models.splits import stratified_split

# 1: JSON {"format": "trees", "format_version", config, encoding, calibration, booster (LightGBM text)}.
TREES_FORMAT_VERSION = 1
_MONOTONE = {1: 1, -1: -1, 0: 0, "increasing": 1, "decreasing": -1, "none": 0, None: 0}


def _lgb():
    import lightgbm  # imported on use: the networks do not need it

    return lightgbm


class TreeModel:
    """A LightGBM booster with its column encoding and Platt calibration (estimator contract
    of ``models.families.base``)."""

    kind = "trees"

    def __init__(
        self,
        *,
        n_estimators: int = 400,
        num_leaves: int = 63,
        learning_rate: float = 0.05,
        min_child_samples: int = 20,
        reg_lambda: float = 0.0,
        colsample_bytree: float = 1.0,
        subsample: float = 1.0,
        max_cat_to_onehot: int = 4,
        early_stopping_rounds: int = 50,
        validation_fraction: float = 0.15,
        calibration_fraction: float = 0.15,
        seed: int = 0,
        device: str = "cpu",
        num_threads: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.colsample_bytree = colsample_bytree
        self.subsample = subsample
        self.max_cat_to_onehot = max_cat_to_onehot
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.calibration_fraction = calibration_fraction
        self.seed = seed
        self.device = device
        self.num_threads = num_threads

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TreesFamily().space()}

    # -- encoding ---------------------------------------------------------------------

    def _fit_encoding(self, schema: dict[str, Any], frame: pd.DataFrame) -> None:
        columns = []
        for column in input_columns(schema):
            name = column["name"]
            if name not in frame.columns:
                raise ValueError(f"input column {name!r} is missing from the frame")
            if column["role"] == "numeric":
                monotone = column.get("monotone")
                if monotone not in _MONOTONE:
                    raise ValueError(f"column {name!r}: monotone must be increasing, decreasing or none")
                columns.append({"name": name, "type": "numeric", "monotone": _MONOTONE[monotone]})
            else:
                if column.get("monotone") not in (None, 0, "none"):
                    raise ValueError(f"column {name!r}: a categorical column cannot be monotone")
                seen = pd.Series(_as_category(frame[name])).dropna().astype(str).unique()
                declared = [str(c) for c in column.get("categories", [])]
                categories = [c for c in declared if c in set(seen)] + sorted(set(seen).difference(declared))
                columns.append({"name": name, "type": "categorical", "categories": categories})
        self.columns_ = columns

    def encode(self, static: pd.DataFrame) -> np.ndarray:
        """(n, features) float64: numbers as they are, categories as codes, NaN for missing/unseen."""
        out = np.empty((len(static), len(self.columns_)), dtype=np.float64)
        for j, column in enumerate(self.columns_):
            if column["type"] == "numeric":
                out[:, j] = _as_float(static[column["name"]])
            else:
                labels = pd.Series(_as_category(static[column["name"]]), dtype=object)
                missing = labels.isna().to_numpy()
                codes = pd.Categorical(labels.astype(str), categories=column["categories"]).codes.astype(np.float64)
                codes[(codes < 0) | missing] = np.nan  # unseen or missing: LightGBM's "other" side
                out[:, j] = codes
        return out

    @property
    def feature_sources_(self) -> list[str]:
        return [c["name"] for c in self.columns_]

    feature_names_ = feature_sources_

    def _categorical_index(self) -> list[int]:
        return [j for j, c in enumerate(self.columns_) if c["type"] == "categorical"]

    # -- fitting ----------------------------------------------------------------------

    def _lgb_params(self) -> dict[str, Any]:
        from models.training import _default_threads

        device = "cpu" if self.device in ("auto", "cpu") else "cuda"
        return {
            "objective": "binary", "learning_rate": float(self.learning_rate), "num_leaves": int(self.num_leaves),
            "min_child_samples": int(self.min_child_samples), "reg_lambda": float(self.reg_lambda),
            "colsample_bytree": float(self.colsample_bytree), "subsample": float(self.subsample),
            "subsample_freq": 1 if self.subsample < 1 else 0, "max_cat_to_onehot": int(self.max_cat_to_onehot),
            "monotone_constraints": [c.get("monotone", 0) for c in self.columns_],
            "monotone_constraints_method": "advanced", "seed": int(self.seed), "deterministic": True,
            "force_row_wise": True, "num_threads": int(self.num_threads or _default_threads()),
            "device_type": device, "verbosity": -1,
        }  # fmt: skip

    def fit(
        self,
        static: pd.DataFrame,
        y: Any,
        *,
        schema: dict[str, Any],
        history=None,
        history_mask=None,
        validation=None,
        calibration=None,
        on_epoch=None,
    ) -> TreeModel:
        """Boost on ``static``/``y`` with early stopping on ``validation`` AUC, then Platt
        scaling on ``calibration``; each is carved from the training rows if not given."""
        from models.training import CreditData

        lgb = _lgb()
        train = CreditData(static, np.asarray(y, dtype=np.int64))
        val = None if validation is None else CreditData.of(validation)
        cal = None if calibration is None else CreditData.of(calibration)
        if val is None or cal is None:
            fractions = {"validation": self.validation_fraction, "calibration": self.calibration_fraction}
            parts = stratified_split(
                train.y, seed=self.seed, fractions={"train": 1 - sum(fractions.values()), **fractions}
            )
            val = val or train.subset(parts["validation"])
            cal = cal or train.subset(parts["calibration"])
            train = train.subset(parts["train"])
        if set(np.unique(train.y)) != {0, 1}:
            raise ValueError("y must be 0/1 with both outcomes present")
        self._fit_encoding(schema, train.static)
        categorical = self._categorical_index()
        names = [f"f{j}" for j in range(len(self.columns_))]
        dtrain = lgb.Dataset(self.encode(train.static), train.y, feature_name=names, categorical_feature=categorical,
                             free_raw_data=True)  # fmt: skip
        x_val = self.encode(val.static)
        dval = lgb.Dataset(x_val, val.y, reference=dtrain, feature_name=names, categorical_feature=categorical)
        self.epochs_: list[dict[str, float]] = []

        def record(env) -> None:
            # One "epoch" = one boosting round; AUC and log-loss on the validation rows
            # (the loss reported is the validation log-loss: trees keep no training loss).
            val_auc = float(env.evaluation_result_list[0][2])
            val_loss = float(env.evaluation_result_list[1][2])
            self.epochs_.append({"epoch": env.iteration + 1, "val_auc": val_auc, "val_loss": val_loss})
            if on_epoch:
                on_epoch(env.iteration + 1, val_loss, val_auc)

        started = time.perf_counter()
        self.booster_ = lgb.train(
            {**self._lgb_params(), "metric": ["auc", "binary_logloss"]}, dtrain, num_boost_round=int(self.n_estimators),
            valid_sets=[dval], valid_names=["validation"],
            callbacks=[lgb.early_stopping(int(self.early_stopping_rounds), first_metric_only=True, verbose=False), record],
        )  # fmt: skip
        self.fit_seconds_ = time.perf_counter() - started
        self.best_epoch_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        self.best_val_auc_ = float(auc(val.y, self._raw(x_val)))
        self.n_epochs_ = len(self.epochs_)
        self.device_ = self._lgb_params()["device_type"]
        self.n_train_, self.n_validation_, self.n_calibration_ = len(train.y), len(val.y), len(cal.y)
        self.calibrator_ = PlattCalibrator().fit(self.predict_raw_logit(cal.static), cal.y)
        self.metrics_ = None
        return self

    # -- prediction -------------------------------------------------------------------

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.predict(x, raw_score=True, num_iteration=self.best_epoch_), dtype=np.float64)

    def predict_raw_logit(self, static, history=None, history_mask=None) -> np.ndarray:
        return self._raw(self.encode(static))

    def predict_logit(self, static, history=None, history_mask=None) -> np.ndarray:
        return self.calibrator_.calibrated_logit(self.predict_raw_logit(static))

    def predict_pd(self, static, history=None, history_mask=None) -> np.ndarray:
        return self.calibrator_.pd(self.predict_raw_logit(static))

    def predict_proba(self, static, history=None, history_mask=None) -> np.ndarray:
        pd_ = self.predict_pd(static)
        return np.column_stack([1.0 - pd_, pd_])

    def contributions(self, static: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
        """Exact TreeSHAP from LightGBM: (raw logit (n,), contributions (n, features), expected value)."""
        x = self.encode(static)
        contrib = np.asarray(self.booster_.predict(x, pred_contrib=True, num_iteration=self.best_epoch_))
        contrib = contrib.reshape(len(x), len(self.columns_) + 1)
        return self._raw(x), contrib[:, :-1], float(contrib[0, -1]) if len(x) else 0.0

    def evaluate(self, static, y, history=None, history_mask=None, *, costs: CostMatrix = GERMAN_CREDIT_COSTS):
        return evaluate(y, self.predict_pd(static), costs=costs)

    # -- persistence ------------------------------------------------------------------

    def to_bytes(self, metrics: dict[str, Any] | None = None) -> bytes:
        document = {
            "format": "trees", "format_version": TREES_FORMAT_VERSION, "kind": self.kind,
            "hyper_parameters": self.get_params(), "columns": self.columns_,
            "calibration": self.calibrator_.to_dict(),
            "training": {"best_epoch": self.best_epoch_, "best_val_auc": self.best_val_auc_, "n_epochs": self.n_epochs_,
                         "fit_seconds": self.fit_seconds_, "device": self.device_, "n_train": self.n_train_,
                         "n_validation": self.n_validation_, "n_calibration": self.n_calibration_,
                         "lightgbm_version": _lgb().__version__},
            "metrics": metrics, "booster": self.booster_.model_to_string(num_iteration=self.best_epoch_),
        }  # fmt: skip
        return json.dumps(document, sort_keys=True, allow_nan=False).encode()

    def save(self, target: artifacts.Target, *, metrics: dict[str, Any] | None = None) -> str:
        return artifacts.put(target, self.to_bytes(metrics))

    @classmethod
    def load(cls, source: artifacts.Source, expected_sha256: str, *, device: str = "cpu") -> TreeModel:
        document = json.loads(artifacts.verified(source, expected_sha256))
        if document.get("format") != "trees" or document.get("format_version") != TREES_FORMAT_VERSION:
            raise artifacts.ArtifactFormatError(
                f"not a trees artifact of format {TREES_FORMAT_VERSION}: {document.get('format')!r} "
                f"{document.get('format_version')!r}"
            )
        model = cls(**document["hyper_parameters"])
        model.columns_ = document["columns"]
        model.calibrator_ = PlattCalibrator.from_dict(document["calibration"])
        model.booster_ = _lgb().Booster(model_str=document["booster"])
        training = document["training"]
        model.best_epoch_ = int(training["best_epoch"])
        model.best_val_auc_ = training["best_val_auc"]
        model.n_epochs_ = training["n_epochs"]
        model.fit_seconds_ = training["fit_seconds"]
        model.device_ = "cpu"  # predictions and TreeSHAP run on the CPU
        model.n_train_, model.n_validation_ = training["n_train"], training["n_validation"]
        model.n_calibration_ = training["n_calibration"]
        model.epochs_ = []
        model.metrics_ = document["metrics"]
        return model


class _TreeExplainer:
    """TreeSHAP by LightGBM itself: stateless per call, so any number of threads may share it."""

    def __init__(self, model: TreeModel) -> None:
        self.model = model
        self.groups_ = model.feature_sources_
        # The expected value is the same for every row: read it from one empty-ish row.
        probe = pd.DataFrame({c["name"]: [np.nan] for c in model.columns_})
        self.expected_value_ = model.contributions(probe)[2]

    def explain(self, static, history=None, history_mask=None) -> tuple[np.ndarray, np.ndarray]:
        raw, contributions, _ = self.model.contributions(static)
        return raw, contributions


class TreesFamily(Family):
    name = "trees"
    label = "Gradient-boosted trees (LightGBM) on static features"
    needs_history = False
    accelerators = ("cuda",)

    def space(self) -> dict[str, ParamSpec]:
        specs = [
            ParamSpec("n_estimators", "int", 400, 1, 20000, help="most boosting rounds (early stopping picks fewer)"),
            ParamSpec("num_leaves", "int", 63, 2, 4096, log=True),
            ParamSpec("learning_rate", "float", 0.05, 1e-4, 1.0, log=True),
            ParamSpec("min_child_samples", "int", 20, 1, 100000, log=True),
            ParamSpec("reg_lambda", "float", 0.0, 0.0, 1000.0),
            ParamSpec("colsample_bytree", "float", 1.0, 0.05, 1.0),
            ParamSpec("subsample", "float", 1.0, 0.05, 1.0),
            ParamSpec("max_cat_to_onehot", "int", 4, 1, 256),
            ParamSpec("early_stopping_rounds", "int", 50, 1, 5000),
            ParamSpec("validation_fraction", "float", 0.15, 0.01, 0.5),
            ParamSpec("calibration_fraction", "float", 0.15, 0.01, 0.5),
            ParamSpec("seed", "int", 0, 0, 2**31 - 1),
            ParamSpec("device", "device", "cpu"),
            ParamSpec("num_threads", "int", None, 1, 256, nullable=True),
        ]
        return {spec.name: spec for spec in specs}

    def build(self, **hyperparameters: Any) -> TreeModel:
        return TreeModel(**hyperparameters)

    def load(self, source: artifacts.Source, sha256: str, *, device: str = "cpu") -> TreeModel:
        return TreeModel.load(source, sha256, device=device)

    def background(self, model, static, history=None, history_mask=None, *, seed: int) -> dict[str, np.ndarray]:
        # TreeSHAP (path-dependent) needs no reference rows: the trees carry their cover.
        return {"none": np.zeros(0)}

    def explainer(self, model, background) -> _TreeExplainer:
        return _TreeExplainer(model)

    def baseline_inputs(self, model, static, history=None, history_mask=None) -> np.ndarray:
        # The logistic baseline on the networks' encoding of the same columns.
        from models.features import StaticPipeline

        schema = {"columns": [{"name": c["name"], "role": c["type"]} for c in model.columns_]}
        pipeline = getattr(model, "_baseline_pipeline", None)
        if pipeline is None:
            pipeline = model._baseline_pipeline = StaticPipeline(schema).fit(static)
        return pipeline.transform(static)

    def max_epochs(self, hyperparameters: dict[str, Any]) -> int | None:
        return int(hyperparameters.get("n_estimators") or 400)

    def search_space(self, trial) -> dict[str, Any]:
        return {
            "num_leaves": trial.suggest_int("num_leaves", 15, 255, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "n_estimators": 2000,
        }
