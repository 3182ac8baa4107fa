"""Stratified splits: deterministic from the seed, disjoint, covering, same default rate."""

from __future__ import annotations

import numpy as np
import pytest

from models.splits import stratified_kfold, stratified_split


@pytest.fixture
def y():
    return (np.random.default_rng(0).random(10_000) < 0.1).astype(int)


def test_the_same_seed_gives_the_same_split_and_another_seed_another(y):
    a, b, c = stratified_split(y, seed=1), stratified_split(y, seed=1), stratified_split(y, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_the_parts_are_disjoint_cover_every_row_and_keep_the_default_rate(y):
    parts = stratified_split(y, seed=0)
    assert list(parts) == ["train", "validation", "calibration", "test"]
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(len(y)))
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 6000, "validation": 1500, "calibration": 1000, "test": 1500}
    for index in parts.values():
        assert abs(y[index].mean() - y.mean()) < 0.002


def test_fractions_must_sum_to_one(y):
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(y, seed=0, fractions={"train": 0.5, "test": 0.3})


def test_kfold_puts_every_row_in_exactly_one_test_fold(y):
    folds = stratified_kfold(y, n_splits=5, seed=0)
    tests = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(y)))
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(y)
        assert abs(len(test) - len(y) / 5) <= 1
        assert abs(y[test].mean() - y.mean()) < 0.002
    again = stratified_kfold(y, n_splits=5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_out_of_time_parts_follow_each_other_in_time_by_whole_months():
    from models.splits import out_of_time_split

    rng = np.random.default_rng(3)
    dates = np.datetime64("2020-01-01") + rng.integers(0, 6 * 365, size=5000).astype("timedelta64[D]")
    dates[:40] = np.datetime64("NaT")  # undated rows cannot be placed in time: they train
    parts = out_of_time_split(dates)
    assert list(parts) == ["train", "validation", "calibration", "test"]
    assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(len(dates)))
    assert set(range(40)) <= set(parts["train"].tolist())
    spans = {k: (dates[v][~np.isnat(dates[v])].min(), dates[v][~np.isnat(dates[v])].max()) for k, v in parts.items()}
    # No training row is newer than any test row; validation comes before the test.
    assert spans["train"][1] < spans["validation"][0] <= spans["validation"][1] < spans["calibration"][0]
    assert spans["calibration"][1] < spans["test"][0]
    for name, _ in spans.items():
        assert spans[name][0].astype("datetime64[M]").astype("datetime64[D]") == spans[name][0] or name == "train"
    sizes = {k: len(v) / len(dates) for k, v in parts.items()}
    assert abs(sizes["train"] - 0.6) < 0.03 and abs(sizes["test"] - 0.15) < 0.03


def test_out_of_time_needs_as_many_months_as_parts():
    from models.splits import out_of_time_split

    dates = np.array(["2024-01-05", "2024-01-20", "2024-02-03"], dtype="datetime64[D]")
    assert out_of_time_split(dates) is None
