"""The trees family: exact TreeSHAP from LightGBM, monotone constraints from the
schema, a text model inside a hash-checked artifact."""

import copy
import io
import json

import numpy as np
import pandas as pd
import pytest

from models.artifacts import ArtifactFormatError, ArtifactIntegrityError
from models.families import family_of
from models.reasons import CreditDecider, background_sample
from models.scaling import PointsScale

TREES = family_of("trees")


@pytest.fixture(scope="module")
def german_trees(german, german_schema):
    frame, y = german
    return TREES.build(seed=0, num_threads=1).fit(frame.iloc[:800], y[:800], schema=german_schema)


def test_contributions_add_up_to_the_raw_logit_on_every_row(german_trees, german):
    frame, _ = german
    raw, contributions, expected = german_trees.contributions(frame)
    np.testing.assert_allclose(contributions.sum(axis=1) + expected, raw, rtol=0, atol=1e-6)
    # One contribution per source column, and categorical columns are native (no one-hot).
    assert contributions.shape == (len(frame), len(german_trees.feature_sources_))
    assert "purpose" in german_trees.feature_sources_


def test_decisions_add_up_in_calibrated_log_odds_on_every_row(german_trees, german):
    frame, _ = german
    background = background_sample(german_trees, frame, seed=0)
    decider = CreditDecider(
        german_trees, background, scale=PointsScale(), approve_min_score=600, decline_below_score=500
    ).fit()
    decisions = decider.decide(frame)
    assert decisions.additivity_error().max() < 1e-6
    np.testing.assert_allclose(decisions.log_odds, german_trees.predict_logit(frame), atol=1e-12)


def test_the_artifact_round_trips_and_refuses_tampering(german_trees, german):
    frame, _ = german
    buffer = io.BytesIO()
    sha256 = german_trees.save(buffer, metrics={"test": {"auc": 0.7}})
    data = buffer.getvalue()
    document = json.loads(data)
    assert document["format"] == "trees" and document["booster"].startswith("tree")  # LightGBM's text format
    loaded = TREES.load(data, sha256)
    np.testing.assert_array_equal(loaded.predict_logit(frame), german_trees.predict_logit(frame))
    np.testing.assert_array_equal(loaded.contributions(frame)[1], german_trees.contributions(frame)[1])
    with pytest.raises(ArtifactIntegrityError):
        TREES.load(data.replace(b'"auc": 0.7', b'"auc": 0.9'), sha256)
    forged = json.dumps({**document, "format": "torch"}).encode()
    from models.artifacts import sha256_bytes

    with pytest.raises(ArtifactFormatError):
        TREES.load(forged, sha256_bytes(forged))


def test_a_monotone_column_never_lowers_risk_as_it_grows(german, german_schema):
    frame, y = german
    schema = copy.deepcopy(german_schema)
    for column in schema["columns"]:
        if column["name"] == "duration_in_month":
            column["monotone"] = "increasing"
    model = TREES.build(seed=0, num_threads=1, learning_rate=0.2, num_leaves=15).fit(
        frame.iloc[:800], y[:800], schema=schema
    )
    grid = np.linspace(frame["duration_in_month"].min(), frame["duration_in_month"].max(), 40)
    for i in range(0, 200, 10):
        rows = pd.concat([frame.iloc[[i]]] * len(grid), ignore_index=True)
        rows["duration_in_month"] = grid
        assert np.all(np.diff(model.predict_raw_logit(rows)) >= -1e-12)


def test_a_categorical_column_cannot_be_monotone(german, german_schema):
    frame, y = german
    schema = copy.deepcopy(german_schema)
    for column in schema["columns"]:
        if column["name"] == "purpose":
            column["monotone"] = "increasing"
    with pytest.raises(ValueError, match="categorical"):
        TREES.build(seed=0, num_threads=1).fit(frame.iloc[:800], y[:800], schema=schema)


def test_unseen_and_missing_categories_score_without_error(german_trees, german):
    frame, _ = german
    rows = frame.iloc[:3].copy()
    rows["purpose"] = ["never-seen", None, rows["purpose"].iloc[2]]
    raw, contributions, expected = german_trees.contributions(rows)
    assert np.isfinite(raw).all()
    np.testing.assert_allclose(contributions.sum(axis=1) + expected, raw, atol=1e-6)
