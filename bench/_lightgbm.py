"""The LightGBM peer shared by the benches (a bench-only dependency)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.features import input_columns

BASE_PARAMS = {
    "objective": "binary",
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "metric": "auc",
    "deterministic": True,
    "num_threads": 2,
    "verbose": -1,
}


def schema_frame(schema: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """The schema's model inputs as LightGBM reads them: numbers, and categoricals as such."""
    x = pd.DataFrame(index=frame.index)
    for c in input_columns(schema):
        if c["role"] == "numeric":
            x[c["name"]] = pd.to_numeric(frame[c["name"]], errors="coerce")
        else:
            x[c["name"]] = pd.Categorical(frame[c["name"]], categories=c["categories"])
    return x


def fit_predict(
    x: pd.DataFrame, y, train, validation, test, *, seed: int, rounds: int, **params
) -> tuple[np.ndarray, int]:
    """Train with early stopping on ``validation``; PDs on ``test`` and the best iteration."""
    import lightgbm as lgb

    booster = lgb.train(
        {**BASE_PARAMS, **params, "seed": seed},
        lgb.Dataset(x.iloc[train], y[train]),
        num_boost_round=rounds,
        valid_sets=[lgb.Dataset(x.iloc[validation], y[validation])],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    return booster.predict(x.iloc[test], num_iteration=booster.best_iteration), booster.best_iteration
