"""The pure recourse search (models/recourse.py) on scorers whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from models.recourse import (
    DECREASE,
    FEATURE_COST,
    INCREASE,
    CategoricalSpec,
    NumericSpec,
    actionable_problems,
    column_actionable,
    nice_step,
    recourse_search,
)


def linear_scorer(weights: dict[str, float], *, cutoff: float = 50.0, bonus: dict | None = None):
    """Points = sum of weight * value (+ a bonus per category); approve at ``cutoff``."""
    calls: list[int] = []

    def score(rows):
        calls.append(len(rows))
        points = np.array(
            [sum(w * float(r[f]) for f, w in weights.items()) + (bonus or {}).get(r.get("purpose"), 0.0) for r in rows]
        )
        return points, ["approve" if p >= cutoff else "decline" for p in points]

    score.calls = calls  # type: ignore[attr-defined]
    return score


def test_one_feature_moves_exactly_as_far_as_needed():
    scorer = linear_scorer({"income": 10.0, "age": 10.0})
    specs = [NumericSpec(name="income", low=0, high=20, spread=4, step=1, integer=True)]
    result = recourse_search({"income": 2, "age": 1}, specs, scorer)
    assert result.decision == "decline" and result.feasible
    best = result.suggestions[0]
    assert [(c.feature, c.before, c.after) for c in best.changes] == [("income", 2, 4)]  # 10*4 + 10*1 = 50
    assert best.cost == pytest.approx(2 / 4 + FEATURE_COST)
    assert all(c.feature != "age" for s in result.suggestions for c in s.changes)  # no spec: never changed


def test_a_continuous_change_is_refined_to_the_boundary_within_a_step():
    scorer = linear_scorer({"x": 1.0})
    specs = [NumericSpec(name="x", low=0, high=100, spread=10, step=0.5)]
    result = recourse_search({"x": 10.0}, specs, scorer)
    (change,) = result.suggestions[0].changes
    assert 50.0 <= change.after <= 50.5


def test_the_allowed_direction_is_respected():
    # Decreasing debt would help, but the spec allows only an increase of income.
    scorer = linear_scorer({"income": 1.0, "debt": -1.0})
    specs = [
        NumericSpec(name="income", low=0, high=100, spread=10, step=1, integer=True, direction=INCREASE),
        NumericSpec(name="debt", low=0, high=100, spread=10, step=1, integer=True, direction=INCREASE),
    ]
    result = recourse_search({"income": 30, "debt": 10}, specs, scorer)
    assert result.suggestions
    for suggestion in result.suggestions:
        assert all(c.after > c.before for c in suggestion.changes)
        assert {c.feature for c in suggestion.changes} == {"income"}


def test_two_features_together_when_neither_alone_reaches():
    scorer = linear_scorer({"a": 10.0, "b": 10.0})
    specs = [NumericSpec(name=n, low=0, high=3, spread=1, step=1, integer=True) for n in ("a", "b")]
    result = recourse_search({"a": 0, "b": 0}, specs, scorer)  # 30 + 30 max; 50 needs both
    assert result.suggestions
    best = result.suggestions[0]
    assert {c.feature for c in best.changes} == {"a", "b"}
    assert sum(c.after for c in best.changes) == 5  # 3 + 2: shrunk to what is needed


def test_a_category_switch_is_a_change_of_cost_one():
    scorer = linear_scorer({"x": 1.0}, bonus={"car": 30.0, "business": -10.0})
    specs = [CategoricalSpec(name="purpose", values=("business", "car", "other"))]
    result = recourse_search({"x": 30.0, "purpose": "business"}, specs, scorer)
    (change,) = result.suggestions[0].changes
    assert (change.before, change.after) == ("business", "car")


def test_no_change_within_bounds_is_said_honestly():
    scorer = linear_scorer({"a": 1.0})
    specs = [NumericSpec(name="a", low=0, high=10, spread=1, step=1, integer=True)]
    result = recourse_search({"a": 0}, specs, scorer)
    assert result.suggestions == [] and not result.feasible and not result.already


def test_an_approved_row_needs_nothing_and_scores_once():
    scorer = linear_scorer({"a": 100.0})
    result = recourse_search({"a": 1}, [NumericSpec(name="a", low=0, high=2)], scorer)
    assert result.already and result.feasible and result.suggestions == [] and result.evaluated == 1


def test_every_suggestion_is_the_scorers_answer_for_its_row_and_the_budget_holds():
    rng = np.random.default_rng(0)
    weights = {f"f{i}": float(w) for i, w in enumerate(rng.normal(size=6))}

    def bumpy(rows):  # not monotone: a line search can be fooled, the answers cannot
        points = np.array([sum(w * r[f] for f, w in weights.items()) + 3 * np.sin(r["f0"]) for r in rows])
        return points, ["approve" if p >= 4 else "decline" for p in points]

    specs = [NumericSpec(name=f, low=-3, high=3, spread=1, step=0.1) for f in weights]
    for seed in range(10):
        row = {f: float(v) for f, v in zip(weights, np.random.default_rng(seed).normal(size=6), strict=True)}
        result = recourse_search(row, specs, bumpy, k=3, budget=1500)
        assert result.evaluated <= 1500 + 1
        for suggestion in result.suggestions:
            points, decisions = bumpy([suggestion.apply(row)])
            assert decisions[0] == suggestion.decision == "approve" and points[0] == pytest.approx(suggestion.points)
            assert len(suggestion.changes) <= 3
            assert all(-3 <= c.after <= 3 for c in suggestion.changes)


def test_suggestions_are_cheapest_first_and_no_superset_of_a_cheaper_one():
    scorer = linear_scorer({"a": 10.0, "b": 5.0, "c": 1.0})
    specs = [NumericSpec(name=n, low=0, high=10, spread=1, step=1, integer=True) for n in ("a", "b", "c")]
    result = recourse_search({"a": 0, "b": 0, "c": 0}, specs, scorer, k=3)
    costs = [s.cost for s in result.suggestions]
    assert costs == sorted(costs)
    sets = [s.features for s in result.suggestions]
    assert not [x for x in sets for y in sets if x != y and y <= x]


def test_schema_actionable_key_defaults_and_checks():
    assert column_actionable({"name": "income", "role": "numeric", "type": "float"}) == "any"
    assert column_actionable({"name": "since", "role": "numeric", "type": "date"}) is None
    assert column_actionable({"name": "sex", "role": "protected", "type": "category"}) is None
    assert column_actionable({"name": "age", "role": "numeric", "actionable": False}) is None
    assert column_actionable({"name": "years", "role": "numeric", "actionable": DECREASE}) == "decrease"
    assert actionable_problems({"name": "sex", "role": "protected", "actionable": True})
    assert actionable_problems({"name": "p", "role": "categorical", "actionable": "increase"})
    assert actionable_problems({"name": "x", "role": "numeric", "actionable": "sometimes"})
    assert actionable_problems({"name": "x", "role": "numeric", "step": 0})
    assert actionable_problems({"name": "x", "role": "numeric", "actionable": "increase", "step": 2}) == []


def test_nice_steps_are_round():
    assert nice_step(20_000) == 500 and nice_step(0.2) == 0.005 and nice_step(12) == 0.5 and nice_step(0) == 0.0
