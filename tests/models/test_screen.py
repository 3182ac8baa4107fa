"""The leakage and sanity screen (models/screen.py): the planted leak of the hard
synthetic mode is flagged and nothing else; nothing on German credit or the default
synthetic mode; thresholds are parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import coltypes
from models.features import input_columns, target_vector
from models.screen import ScreenThresholds, model_screen, rank_auc, screen
from models.splits import stratified_split
from models.synthetic import HARD_LEAK, generate_all, generate_hard, hard_schema


def screened(frame: pd.DataFrame, schema: dict, **kwargs) -> dict:
    """The screen of the training part of a stratified split, as training runs it."""
    y = target_vector(frame, schema)
    train = stratified_split(y, seed=0)["train"]
    static = coltypes.encode_frame(schema["columns"], frame.iloc[train].to_dict("records"), ("numeric", "categorical"))
    categorical = [c["name"] for c in input_columns(schema) if c["role"] == "categorical"]
    return screen(static, y[train], categorical=categorical, **kwargs)


@pytest.fixture(scope="module")
def hard_labelled() -> pd.DataFrame:
    frame = generate_hard(8000, seed=1)
    return frame[frame["defaulted"] != ""].reset_index(drop=True)


def test_the_planted_leak_is_flagged_and_nothing_else_on_the_hard_set(hard_labelled):
    result = screened(hard_labelled, hard_schema())
    assert result["flagged"] == [HARD_LEAK], result["findings"]
    leak = next(f for f in result["features"] if f["feature"] == HARD_LEAK)
    assert leak["patterns"]["multiple_of_12"]["repaid"] > 0.9 > 0.4 > leak["patterns"]["multiple_of_12"]["defaulted"]
    # The genuine signals are measured, and below the flags.
    aucs = {f["feature"]: f["auc"] for f in result["features"]}
    assert aucs["credit_score"] > 0.6 and aucs["debt_to_income"] > 0.6 and aucs["industry_code"] > 0.52
    assert aucs["region"] < 0.56


def test_nothing_is_flagged_on_german_credit(german, german_schema):
    frame, _ = german
    result = screened(frame, german_schema)
    assert result["flagged"] == [] and result["findings"] == []
    assert result["features"][0]["feature"] == "status_of_existing_checking_account"


@pytest.mark.parametrize("rows", [3000, 20_000])
def test_nothing_is_flagged_on_the_default_synthetic_mode(synthetic_schema, rows):
    result = screened(generate_all(rows, seed=5).applicants, synthetic_schema)
    assert result["flagged"] == [], result["findings"]


def test_the_thresholds_are_parameters(hard_labelled):
    strict = screened(hard_labelled, hard_schema(), thresholds={"feature_auc": 0.6})
    assert {HARD_LEAK, "credit_score", "debt_to_income"} <= set(strict["flagged"])
    assert strict["thresholds"]["feature_auc"] == 0.6
    lenient = screened(hard_labelled, hard_schema(), thresholds=ScreenThresholds(pattern_gap=0.9))
    assert lenient["flagged"] == []


def test_a_model_far_above_its_baseline_or_too_good_is_flagged():
    assert model_screen(model_auc=0.78, baseline_auc=0.74)["flags"] == []
    (gap,) = model_screen(model_auc=0.93, baseline_auc=0.74)["flags"]
    assert "above the logistic baseline" in gap
    assert any("too good" in flag for flag in model_screen(model_auc=0.99, baseline_auc=0.95)["flags"])
    rng = np.random.default_rng(0)
    static = pd.DataFrame({"x": rng.normal(size=500)})
    y = (rng.random(500) < 0.2).astype(int)
    result = screen(static, y, categorical=[], model_auc=0.95, baseline_auc=0.7)
    assert result["flagged"] == ["model"] and result["findings"][0].startswith("model: ")


def test_a_category_that_encodes_its_rows_outcome_is_judged_out_of_fold():
    # Unique codes carry no information out of fold: a per-row id is not a leak by itself.
    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.2).astype(int)
    static = pd.DataFrame({"code": [f"c{i}" for i in range(3000)]})
    (entry,) = screen(static, y, categorical=["code"])["features"]
    assert entry["auc"] < 0.56 and entry["flags"] == []
    # A category whose value is the outcome is flagged.
    static = pd.DataFrame({"status": np.where(y == 1, "charged_off", "paid")})
    assert screen(static, y, categorical=["status"])["flagged"] == ["status"]


def test_rank_auc_counts_ties_half():
    assert rank_auc(np.array([1, 1, 1, 1.0]), np.array([0, 1, 0, 1])) == 0.5
    assert rank_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert np.isnan(rank_auc(np.array([1.0, 2.0]), np.array([1, 1])))
