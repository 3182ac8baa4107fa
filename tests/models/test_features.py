"""The static and history pipelines: shapes, missing values, unseen categories, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.features import (
    MISSING_SUFFIX,
    UNSEEN,
    HistoryPipeline,
    StaticPipeline,
    group_by_source,
    input_columns,
    target_vector,
)

SCHEMA = {
    "columns": [
        {"name": "applicant_id", "role": "id", "type": "string"},
        {"name": "income", "role": "numeric", "type": "float"},
        {"name": "years", "role": "numeric", "type": "float", "nullable": True},
        {"name": "lines", "role": "numeric", "type": "integer"},
        {"name": "purpose", "role": "categorical", "type": "category", "categories": ["car", "home", "other"]},
        {"name": "sex", "role": "protected", "type": "category", "categories": ["F", "M"]},
        {"name": "full_name", "role": "pii", "type": "string"},
        {"name": "note", "role": "ignore", "type": "string"},
        {"name": "bad", "role": "target", "type": "category", "categories": ["no", "yes"], "positive_label": "yes"},
    ]
}


def frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, n)
    income[:10] = np.nan  # missing in training: gets an indicator
    return pd.DataFrame(
        {
            "applicant_id": [f"A{i}" for i in range(n)],
            "income": income,
            "years": rng.uniform(0, 20, n),  # nullable, none missing: still gets an indicator
            "lines": rng.integers(0, 10, n),
            "purpose": rng.choice(["car", "home", "other"], n),
            "sex": rng.choice(["F", "M"], n),
            "full_name": [f"Name {i}" for i in range(n)],
            "note": "x",
            "bad": rng.choice(["no", "yes"], n),
        }
    )


def test_only_numeric_and_categorical_columns_are_inputs():
    assert [c["name"] for c in input_columns(SCHEMA)] == ["income", "years", "lines", "purpose"]
    pipeline = StaticPipeline(SCHEMA).fit(frame())
    assert set(pipeline.feature_sources_) == {"income", "years", "lines", "purpose"}
    assert pipeline.source_features_ == ["income", "years", "lines", "purpose"]


def test_output_is_float32_with_one_name_and_one_source_per_column():
    pipeline = StaticPipeline(SCHEMA).fit(frame())
    x = pipeline.transform(frame(50, seed=1))
    assert x.dtype == np.float32
    assert x.shape == (50, pipeline.n_features_out_) == (50, len(pipeline.feature_names_))
    assert len(pipeline.feature_sources_) == len(pipeline.feature_names_)
    assert pipeline.feature_names_ == [
        "income",
        "income" + MISSING_SUFFIX,
        "years",
        "years" + MISSING_SUFFIX,
        "lines",
        "purpose=car",
        "purpose=home",
        "purpose=other",
        "purpose=" + UNSEEN,
    ]


def test_a_missing_numeric_value_is_imputed_with_the_median_and_flagged():
    pipeline = StaticPipeline(SCHEMA).fit(frame())
    row = frame(1, seed=2)
    row.loc[0, "income"] = None
    x = pipeline.transform(row)
    names = pipeline.feature_names_
    assert x[0, names.index("income")] == 0.0  # the median, scaled
    assert x[0, names.index("income" + MISSING_SUFFIX)] == 1.0


def test_no_indicator_for_a_column_never_missing_in_training_and_not_nullable():
    pipeline = StaticPipeline(SCHEMA).fit(frame())
    assert "lines" + MISSING_SUFFIX not in pipeline.feature_names_
    row = frame(1, seed=2).assign(lines=None)
    assert pipeline.transform(row)[0, pipeline.feature_names_.index("lines")] == 0.0  # imputed all the same


def test_an_unseen_category_goes_to_the_unseen_column_never_an_error():
    pipeline = StaticPipeline(SCHEMA).fit(frame())
    rows = frame(3, seed=3)
    rows["purpose"] = ["boat", None, "car"]
    x = pipeline.transform(rows)
    names = pipeline.feature_names_
    one_hot = x[:, [names.index(f"purpose={c}") for c in ("car", "home", "other", UNSEEN)]]
    assert one_hot.tolist() == [[0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]]


def test_rare_categories_share_the_unseen_column():
    data = frame(200)
    data.loc[:2, "purpose"] = "boat"
    pipeline = StaticPipeline(SCHEMA, min_category_count=5).fit(data)
    assert "purpose=boat" not in pipeline.feature_names_
    assert StaticPipeline(SCHEMA).fit(data).feature_names_[-2] == "purpose=boat"  # undeclared, seen: kept


def test_numbers_stored_as_strings_give_the_same_output():
    data = frame()
    pipeline = StaticPipeline(SCHEMA).fit(data)
    as_strings = data.assign(lines=data["lines"].astype(str), years=data["years"].map(repr))
    np.testing.assert_array_equal(pipeline.transform(data), pipeline.transform(as_strings))


def test_robust_scaling_is_clipped_and_a_zero_iqr_scales_by_one():
    data = frame().assign(lines=3)
    data.loc[0, "lines"] = 4
    pipeline = StaticPipeline(SCHEMA, clip=5.0).fit(data)
    lines = next(c for c in pipeline.numeric_ if c["name"] == "lines")
    assert (lines["median"], lines["iqr"]) == (3.0, 1.0)
    x = pipeline.transform(data.assign(income=1e12, lines=100))
    assert x[:, pipeline.feature_names_.index("income")].max() == 5.0
    assert x[:, pipeline.feature_names_.index("lines")].max() == 5.0


def test_protected_pii_and_id_columns_do_not_change_the_output():
    data = frame()
    pipeline = StaticPipeline(SCHEMA).fit(data)
    other = data.assign(sex="F", full_name="Someone Else", applicant_id="Z", note="y", bad="no")
    np.testing.assert_array_equal(pipeline.transform(data), pipeline.transform(other))
    np.testing.assert_array_equal(
        pipeline.transform(data), pipeline.transform(data[["income", "years", "lines", "purpose"]])
    )


def test_static_pipeline_json_round_trip_gives_identical_output():
    pipeline = StaticPipeline(SCHEMA).fit(frame())
    restored = StaticPipeline.from_dict(json.loads(json.dumps(pipeline.to_dict(), allow_nan=False)))
    rows = frame(100, seed=9)
    rows.loc[:5, "purpose"] = "boat"
    np.testing.assert_array_equal(pipeline.transform(rows), restored.transform(rows))
    assert restored.feature_names_ == pipeline.feature_names_
    assert restored.feature_sources_ == pipeline.feature_sources_


def test_group_by_source_sums_one_hot_columns_into_their_feature():
    pipeline = StaticPipeline(SCHEMA).fit(frame())
    values = np.ones((2, pipeline.n_features_out_))
    grouped = group_by_source(values, pipeline.feature_sources_)
    assert grouped["purpose"].tolist() == [4.0, 4.0]  # car, home, other, unseen
    assert grouped["income"].tolist() == [2.0, 2.0]  # value and missing indicator


def test_target_vector_uses_the_positive_label():
    assert target_vector(pd.DataFrame({"bad": ["yes", "no", "yes"]}), SCHEMA).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="missing"):
        target_vector(pd.DataFrame({"bad": ["yes", None]}), SCHEMA)


def history(n: int = 50, months: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    balance = rng.uniform(0, 20_000, (n, months))
    paid = rng.uniform(0, 500, (n, months))
    dpd = rng.choice([0, 0, 0, 30, 60], (n, months)).astype(float)
    return np.stack([balance, paid, dpd], axis=-1)


def test_history_output_is_n_by_4_channels_by_months_float32():
    pipeline = HistoryPipeline().fit(history())
    x = pipeline.transform(history(7, seed=1))
    assert x.shape == (7, 4, 12) and x.dtype == np.float32
    assert pipeline.feature_names_ == ["balance", "amount_paid", "days_past_due", "observed"]
    assert np.all(np.abs(x) <= 5.0)


def test_months_without_data_are_zero_with_the_observed_channel_off():
    h = history()
    mask = np.ones(h.shape[:2], dtype=bool)
    mask[0, :3] = False
    h[1, 5] = np.nan  # a NaN month counts as missing too
    pipeline = HistoryPipeline().fit(h, mask)
    x = pipeline.transform(h, mask)
    assert np.all(x[0, :, :3] == 0.0)
    assert np.all(x[1, :, 5] == 0.0)
    assert x[0, 3, 3:].tolist() == [1.0] * 9
    assert np.isfinite(x).all()


def test_history_scaling_is_fitted_on_observed_months_only():
    h = history()
    mask = np.ones(h.shape[:2], dtype=bool)
    garbage = h.copy()
    garbage[:, :2] = 1e9  # values under a False mask are ignored
    mask[:, :2] = False
    assert HistoryPipeline().fit(garbage, mask).to_dict() == HistoryPipeline().fit(h, mask).to_dict()


def test_history_pipeline_json_round_trip_gives_identical_output():
    pipeline = HistoryPipeline().fit(history())
    restored = HistoryPipeline.from_dict(json.loads(json.dumps(pipeline.to_dict(), allow_nan=False)))
    np.testing.assert_array_equal(pipeline.transform(history(9, seed=4)), restored.transform(history(9, seed=4)))


def test_history_of_another_length_is_refused():
    pipeline = HistoryPipeline().fit(history(months=12))
    with pytest.raises(ValueError, match="12 months"):
        pipeline.transform(history(months=24))
