"""Evaluation figures against scikit-learn and brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from models import metrics
from models.metrics import CostMatrix


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    pd_ = rng.beta(1, 8, 5000)
    y = (rng.random(5000) < pd_).astype(int)
    return y, pd_


def test_discrimination_and_probability_scores_match_scikit_learn(scored):
    y, pd_ = scored
    assert metrics.auc(y, pd_) == pytest.approx(roc_auc_score(y, pd_))
    assert metrics.gini(y, pd_) == pytest.approx(2 * roc_auc_score(y, pd_) - 1)
    assert metrics.brier(y, pd_) == pytest.approx(brier_score_loss(y, pd_))
    assert metrics.log_loss(y, pd_) == pytest.approx(log_loss(y, pd_))


def test_ks_is_the_largest_gap_between_the_cumulative_bad_and_good_shares():
    y = np.array([1, 1, 0, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    # riskiest first: after 2 rows 2/3 of bads and 0 goods -> 0.667
    assert metrics.ks(y, score) == pytest.approx(2 / 3)
    assert metrics.ks(np.array([1, 0]), np.array([0.5, 0.5])) == 0.0  # ties are not split


def test_decile_table_counts_and_rates(scored):
    y, pd_ = scored
    table = metrics.decile_table(y, pd_)
    assert [row["count"] for row in table] == [500] * 10
    assert [row["mean_pd"] for row in table] == sorted(row["mean_pd"] for row in table)
    assert sum(row["observed_rate"] * row["count"] for row in table) == pytest.approx(y.sum())


def test_cutoff_table_approves_pd_at_or_below_the_cutoff():
    y = np.array([0, 0, 1, 1])
    pd_ = np.array([0.05, 0.1, 0.1, 0.5])
    rows = metrics.cutoff_table(y, pd_, [0.1])
    assert rows == [{"cutoff": 0.1, "approval_rate": 0.75, "bad_rate": pytest.approx(1 / 3), "approved": 3}]


def test_best_cutoff_is_the_brute_force_minimum_cost(scored):
    y, pd_ = scored
    costs = CostMatrix(bad_accepted=5, good_rejected=1)
    best = metrics.best_cutoff(y, pd_, costs)
    brute = min(metrics.expected_cost(y, pd_, c, costs)["total"] for c in np.r_[0.0, np.unique(pd_)])
    assert best["total"] == brute
    assert best == metrics.expected_cost(y, pd_, best["cutoff"], costs)


def test_expected_cost_counts_the_two_errors():
    y = np.array([0, 1, 0, 1])
    pd_ = np.array([0.1, 0.1, 0.9, 0.9])
    cost = metrics.expected_cost(y, pd_, 0.5, CostMatrix(bad_accepted=5, good_rejected=1))
    assert (cost["bad_accepted"], cost["good_rejected"], cost["total"], cost["per_applicant"]) == (1, 1, 6.0, 1.5)
    assert CostMatrix().bayes_cutoff == pytest.approx(1 / 6)


def test_chart_points_are_downsampled_and_span_the_curve(scored):
    y, pd_ = scored
    roc = metrics.roc_points(y, pd_, max_points=50)
    assert len(roc["fpr"]) <= 50 and (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    curve = metrics.ks_points(y, pd_, max_points=50)
    assert len(curve["population"]) <= 50 and curve["population"][-1] == 1.0
    gaps = np.array(curve["cum_bad"]) - np.array(curve["cum_good"])
    assert gaps.max() <= metrics.ks(y, pd_) + 1e-9


def test_evaluate_is_plain_json(scored):
    y, pd_ = scored
    report = metrics.evaluate(y, pd_)
    json.dumps(report, allow_nan=False)
    assert report["auc"] == pytest.approx(roc_auc_score(y, pd_)) and len(report["deciles"]) == 10


def test_baseline_logistic_returns_the_same_metrics(scored):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 3))
    y = (rng.random(2000) < 1 / (1 + np.exp(-(x[:, 0] - 2)))).astype(int)
    report, pd_ = metrics.baseline_logistic(x[:1500], y[:1500], x[1500:], y[1500:], return_pd=True)
    assert set(report) == set(metrics.evaluate(y[1500:], pd_))
    assert report["auc"] > 0.7
