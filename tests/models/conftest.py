"""Fixtures of the ML tests: the demo schemas and data, small fitted models.

Nothing here needs Django or a database; the fitted models are session-scoped
because training is the slow part.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.features import target_vector
from models.splits import stratified_split
from models.synthetic import generate_all
from models.training import CreditModel

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scoring" / "demo"


@pytest.fixture(scope="session")
def german_schema() -> dict:
    return json.loads((DEMO / "german_credit.schema.json").read_text())


@pytest.fixture(scope="session")
def synthetic_schema() -> dict:
    return json.loads((DEMO / "synthetic.schema.json").read_text())


@pytest.fixture(scope="session")
def german(german_schema) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(DEMO / "german_credit.csv")
    return frame, target_vector(frame, german_schema)


@pytest.fixture(scope="session")
def small_synthetic(synthetic_schema):
    """3,000 synthetic applicants: (applicants, history, y)."""
    block = generate_all(3000, seed=5)
    return block.applicants, block.history, target_vector(block.applicants, synthetic_schema)


def fit_german_mlp(german, german_schema, **params) -> CreditModel:
    frame, y = german
    params = {"seed": 0, "max_epochs": 8, **params}
    return CreditModel("mlp", **params).fit(frame.iloc[:800], y[:800], schema=german_schema)


def fit_small_cnn(small_synthetic, synthetic_schema, **params) -> CreditModel:
    applicants, history, y = small_synthetic
    params = {"seed": 0, "max_epochs": 3, **params}
    return CreditModel("cnn", **params).fit(
        applicants.iloc[:2500], y[:2500], history=history[:2500], schema=synthetic_schema
    )


@pytest.fixture(scope="session")
def german_mlp(german, german_schema) -> CreditModel:
    return fit_german_mlp(german, german_schema)


@pytest.fixture(scope="session")
def small_cnn(small_synthetic, synthetic_schema) -> CreditModel:
    return fit_small_cnn(small_synthetic, synthetic_schema)


@pytest.fixture(scope="session")
def synthetic_100k(synthetic_schema) -> dict:
    """100k synthetic applicants split 60/15/10/15, the default MLP and CNN fitted on the
    train rows, and their calibrated PDs on the test rows (slow: ~30-60 s on 2 CPUs)."""
    block = generate_all(100_000, seed=1)
    applicants, history = block.applicants, block.history
    y = target_vector(applicants, synthetic_schema)
    parts = stratified_split(y, seed=0)
    train, validation, calibration, test = (parts[p] for p in ("train", "validation", "calibration", "test"))
    out = {
        "y_test": y[test],
        "applicants_test": applicants.iloc[test].reset_index(drop=True),
        "history_test": history[test],
    }
    for kind in ("mlp", "cnn"):
        cnn = kind == "cnn"

        def part(index, cnn=cnn):
            return (applicants.iloc[index], y[index], history[index] if cnn else None)

        model = CreditModel(kind, seed=0).fit(
            applicants.iloc[train],
            y[train],
            history=history[train] if cnn else None,
            schema=synthetic_schema,
            validation=part(validation),
            calibration=part(calibration),
        )
        out[kind] = model
        out[f"pd_{kind}"] = model.predict_pd(out["applicants_test"], out["history_test"] if cnn else None)
    return out
