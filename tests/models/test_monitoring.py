"""Monitoring math against hand-computed figures, and its behaviour on synthetic shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import monitoring as m
from models.synthetic import generate_all


def test_psi_matches_the_hand_computed_sum_on_a_tiny_example():
    # Reference 1, 2, 3, 4 in two quantile bins: the median 2.5 splits it 50/50 (nothing missing).
    profile = m.profile_numeric([1, 2, 3, 4], n_bins=2)
    assert profile["edges"] == [2.5]
    assert profile["shares"] == [0.5, 0.5, 0.0]
    # Later 1, 1, 1, 4: 75 % below the edge, 25 % above.
    # PSI = (0.75 - 0.5) ln(0.75 / 0.5) + (0.25 - 0.5) ln(0.25 / 0.5) = 0.25 ln 1.5 + 0.25 ln 2
    result = m.stability(profile, [1, 1, 1, 4])
    assert result["psi"] == pytest.approx(0.274653, abs=1e-6)
    assert 0.25 * math.log(1.5) + 0.25 * math.log(2) == pytest.approx(0.2746530722)
    assert result["status"] == "fail"
    assert [b["actual"] for b in result["bins"]] == [0.75, 0.25, 0.0]


def test_an_empty_bin_gets_epsilon_so_psi_stays_finite():
    profile = m.profile_numeric([1, 2, 3, 4], n_bins=2)
    # Everything below the edge: the upper bin is empty and counts as 1e-4; the
    # missing bin is empty on both sides and adds nothing.
    expected = (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert m.psi(profile["shares"], m.bin_shares(profile, [1, 1, 2, 2])) == pytest.approx(expected)
    assert expected == pytest.approx(4.604319, abs=1e-6)


def test_bins_are_right_closed_and_open_ended_and_missing_values_have_their_own():
    profile = m.profile_numeric([1, 2, 3, 4], n_bins=2)
    # 2.5 falls in the lower bin (right-closed); 100 beyond the training range still lands in the last.
    assert m.bin_counts(profile, [2.5, 2.6, 100, np.nan]).tolist() == [1, 2, 1]
    assert m.bin_labels(profile) == ["≤ 2.5", "> 2.5", "missing"]


def test_categorical_csi_counts_unseen_categories_apart():
    profile = m.profile_categorical(["a", "a", "b", "b"])
    assert profile["categories"] == ["a", "b"] and profile["shares"] == [0.5, 0.5, 0.0, 0.0]
    result = m.stability(profile, ["a", "b", "c", None])
    assert [b["actual"] for b in result["bins"]] == [0.25, 0.25, 0.25, 0.25]
    expected = 2 * (0.25 - 0.5) * math.log(0.25 / 0.5) + 2 * (0.25 - 1e-4) * math.log(0.25 / 1e-4)
    assert result["psi"] == pytest.approx(expected, abs=1e-6)


def test_psi_status_thresholds_are_point_one_watch_and_point_two_five_act():
    assert [m.psi_status(v) for v in (0.0, 0.099, 0.1, 0.249, 0.25, 3.0)] == [
        "pass", "pass", "watch", "watch", "fail", "fail",
    ]  # fmt: skip


def test_a_shift_in_one_synthetic_feature_moves_only_its_csi_above_act():
    reference = generate_all(4000, seed=1).applicants
    later = generate_all(4000, seed=2).applicants.copy()
    later["debt_to_income"] = later["debt_to_income"] + 0.15  # the injected shift
    numeric = ["income", "loan_amount", "duration_months", "debt_to_income", "employment_years", "num_credit_lines"]
    categorical = ["home_ownership", "purpose", "region"]
    csi = {}
    for name in numeric + categorical:
        profile = m.profile_of(reference[name].to_numpy(), "numeric" if name in numeric else "categorical")
        csi[name] = m.stability(profile, later[name].to_numpy())["psi"]
    assert csi["debt_to_income"] > m.PSI_ACT
    assert all(value < m.PSI_WATCH for name, value in csi.items() if name != "debt_to_income"), csi


def test_fairness_computes_approval_rates_adverse_impact_and_smd_by_hand():
    groups = ["F"] * 100 + ["M"] * 100
    approved = [True] * 40 + [False] * 60 + [True] * 60 + [False] * 40
    scores = [500.0] * 50 + [520.0] * 50 + [540.0] * 50 + [560.0] * 50
    result = m.fairness(groups, approved, scores)
    rows = {r["group"]: r for r in result["groups"]}
    assert result["reference_group"] == "M"
    assert rows["F"]["approval_rate"] == 0.4 and rows["M"]["approval_rate"] == 0.6
    assert rows["F"]["adverse_impact_ratio"] == pytest.approx(0.4 / 0.6, abs=1e-6)
    # Pooled z: p = 0.5, se = sqrt(0.25 * (2 / 100)) = 0.0707107; z = 0.2 / se = 2.8284.
    assert rows["F"]["z"] == pytest.approx(2.8284, abs=1e-4)
    # Means 510 and 550, each with sample SD 10.0504 (ddof 1): SMD = -40 / 10.0504 = -3.98.
    assert rows["F"]["smd"] == pytest.approx(-40 / math.sqrt(100 * 100 / 99), abs=1e-6)
    assert rows["F"]["status"] == "fail" and rows["M"]["status"] == "pass"
    assert result["status"] == "fail" and result["min_adverse_impact_ratio"] == pytest.approx(0.666667, abs=1e-6)


def test_a_small_or_insignificant_gap_below_four_fifths_is_watched_not_failed():
    # 6/20 against 9/20: ratio 0.667 but z = 0.95, not significant.
    groups = ["a"] * 20 + ["b"] * 20 + ["tiny"] * 5
    approved = [True] * 6 + [False] * 14 + [True] * 9 + [False] * 11 + [False] * 5
    result = m.fairness(groups, approved, np.zeros(45), min_group=20)
    rows = {r["group"]: r for r in result["groups"]}
    assert rows["a"]["adverse_impact_ratio"] < m.FOUR_FIFTHS and rows["a"]["status"] == "watch"
    assert rows["tiny"]["judged"] is False and rows["tiny"]["adverse_impact_ratio"] is None
    assert result["status"] == "watch"


def test_backtest_reports_auc_and_ks_per_cohort_and_flags_a_drop():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.random(n) < 0.2
    informative = np.where(y, rng.normal(0.6, 0.15, n), rng.normal(0.4, 0.15, n))
    noise = rng.random(n)
    cohorts = np.array(["2026-08"] * n + ["2026-09"] * n)
    result = m.cohort_backtest(cohorts, np.r_[y, y], np.r_[informative, noise], reference_auc=0.8)
    first, second = result["cohorts"]
    assert first["cohort"] == "2026-08" and first["auc"] > 0.78 and first["status"] == "pass"
    assert second["auc"] == pytest.approx(0.5, abs=0.05) and second["status"] == "fail"
    assert 0 < second["ks"] < first["ks"]
    assert result["status"] == "fail"


def test_a_cohort_with_too_few_outcomes_is_reported_but_not_judged():
    result = m.cohort_backtest(["2026-01"] * 10, [0, 1] * 5, np.linspace(0, 1, 10), reference_auc=0.9)
    (row,) = result["cohorts"]
    assert row["rows"] == 10 and row["auc"] is None and not row["judged"]
    assert result["status"] == "pass"
