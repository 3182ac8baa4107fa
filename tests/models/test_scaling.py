"""Points scaling: 600 at 50:1 good:bad odds, 20 points to double the odds; decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.scaling import APPROVE, DECLINE, REFER, PointsScale, decide, decide_many


def test_the_base_score_is_at_the_base_good_bad_odds():
    scale = PointsScale()
    pd_at_50_to_1 = 1 / 51
    assert scale.score_from_pd(pd_at_50_to_1) == pytest.approx(600.0)
    assert scale.score(math.log(1 / 50)) == pytest.approx(600.0)


def test_twenty_more_points_double_the_good_bad_odds():
    scale = PointsScale()
    good_bad_odds = [(1 - p) / p for p in scale.pd_from_score(np.array([600.0, 620.0, 640.0]))]
    assert good_bad_odds == pytest.approx([50.0, 100.0, 200.0])


def test_higher_score_means_lower_risk():
    scores = PointsScale().score_from_pd(np.array([0.01, 0.05, 0.2]))
    assert scores[0] > scores[1] > scores[2]


def test_log_odds_contributions_become_points_and_stay_additive():
    scale = PointsScale(base_score=600, base_odds=50, pdo=20)
    assert scale.factor == pytest.approx(20 / math.log(2))
    assert scale.offset == pytest.approx(600 - 20 / math.log(2) * math.log(50))
    base, contributions = -3.0, np.array([0.4, -0.1, 0.25])
    assert scale.points(0.4) < 0  # a contribution that raises the risk costs points
    total = scale.base_points(base) + scale.points(contributions).sum()
    assert total == pytest.approx(scale.score(base + contributions.sum()))
    assert scale.log_odds_default(scale.score(-2.5)) == pytest.approx(-2.5)


def test_json_round_trip():
    scale = PointsScale(base_score=500, base_odds=20, pdo=40)
    assert PointsScale.from_dict(scale.to_dict()) == scale


def test_decision_thresholds():
    limits = {"approve_min_score": 620, "decline_below_score": 560}
    assert decide(620, **limits) == APPROVE
    assert decide(619.9, **limits) == REFER
    assert decide(560, **limits) == REFER
    assert decide(559.9, **limits) == DECLINE
    assert decide_many([700, 600, 500], **limits).tolist() == [APPROVE, REFER, DECLINE]
    assert decide(600, approve_min_score=600, decline_below_score=600) == APPROVE  # no refer band


def test_crossed_thresholds_are_refused():
    with pytest.raises(ValueError):
        decide(600, approve_min_score=560, decline_below_score=620)
    with pytest.raises(ValueError):
        PointsScale(pdo=0)
