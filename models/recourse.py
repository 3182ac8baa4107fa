"""Recourse: the smallest changes to actionable features that reach a target decision.

"What would it take?" for a declined or referred applicant. The search knows nothing
about models or policies: it is given a *batch scorer* (rows → points and decisions,
the real decision of the caller's model and policy) and one :class:`FeatureSpec` per
feature it may change. Features without a spec (protected, immutable, the repayment
history) are never touched. Every candidate it returns was scored by that scorer: a
suggestion's decision is the scorer's answer for exactly the suggested row, never an
extrapolation.

Cost of a change set: each change costs its distance normalised by the feature's
spread (the training interquartile range of a number; ``1`` for a switch of category),
plus ``FEATURE_COST`` for every feature changed, so fewer changed features are
preferred at equal distance.

The search, within a budget of scored rows:

1. line search per feature: a grid of values from the applicant's own towards each
   allowed bound, the nearest grid value that reaches the target refined by bisection
   against the last one that did not;
2. beam search over pairs, then triples: the ``beam`` partial change sets that gain the
   most points are combined with moves on other features;
3. every change set that reached the target is shrunk (each numeric change bisected
   towards the applicant's value, each feature dropped if the rest still reach);
4. the ``k`` cheapest, one per set of changed features, are returned.

Pure numpy: no Django (``tests/models/test_purity.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

INCREASE, DECREASE, ANY = "increase", "decrease", "any"
DIRECTIONS = (INCREASE, DECREASE, ANY)
FEATURE_COST = 0.5  # added per changed feature: of two equally distant answers, the one with fewer changes wins
CATEGORY_COST = 1.0  # a switch of category counts as one spread

FEATURE_ROLES = ("numeric", "categorical")


def column_actionable(column: Mapping[str, Any]) -> str | None:
    """How a schema column may change for recourse: ``"any"``, ``"increase"``,
    ``"decrease"``, or None (never). The schema key ``"actionable"`` on a model feature
    (role ``numeric`` or ``categorical``) is ``true`` (either way), ``false``,
    ``"increase"`` or ``"decrease"``; by default a feature is actionable unless it is a
    date. Protected, PII, id, target and ignored columns are never actionable (the
    schema validation refuses ``"actionable"`` on them)."""
    if column.get("role") not in FEATURE_ROLES:
        return None
    value = column.get("actionable", column.get("type") != "date")
    if value is True:
        return ANY
    if isinstance(value, str) and value in (INCREASE, DECREASE):
        return value
    return None


def actionable_problems(column: Mapping[str, Any]) -> list[str]:
    """What is wrong with a column's ``actionable`` and ``step`` keys (schema validation)."""
    problems = []
    value = column.get("actionable", False)
    if not (isinstance(value, bool) or value in (INCREASE, DECREASE)):
        problems.append('\'actionable\' must be true, false, "increase" or "decrease".')
    elif value is not False and column.get("role") not in FEATURE_ROLES:
        problems.append(f"a {column.get('role')} column is never actionable (recourse does not change it).")
    elif value in (INCREASE, DECREASE) and column.get("role") != "numeric":
        problems.append("only a numeric feature can be actionable in one direction.")
    elif value is not False and "actionable" in column and column.get("type") == "date":
        problems.append("a date is never actionable.")
    step = column.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int | float) or step <= 0):
        problems.append("'step' must be a positive number.")
    return problems


Row = dict[str, Any]
Scorer = Callable[[list[Row]], tuple[Sequence[float], Sequence[str]]]


def nice_step(spread: float, fraction: float = 1 / 50) -> float:
    """A round step (1, 2 or 5 times a power of ten) near ``fraction`` of ``spread``: a
    suggestion reads "income 41,500", not "income 41,487.316"."""
    if not math.isfinite(spread) or spread <= 0:
        return 0.0
    raw = spread * fraction
    power = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 5.0, 10.0):
        if raw <= multiple * power:
            return multiple * power
    return 10.0 * power  # pragma: no cover - the loop always returns


class FeatureSpec:
    """What may change about one feature, and what a change costs."""

    kind: ClassVar[str]
    name: str

    def candidates(self, current: Any, n: int) -> list[Any]:
        """Up to ``n`` values other than ``current`` to try, nearest first."""
        raise NotImplementedError

    def cost(self, before: Any, after: Any) -> float:
        raise NotImplementedError

    def between(self, near: Any, far: Any) -> Any | None:
        """A value between ``near`` (not reaching) and ``far`` (reaching), or None when
        nothing lies between them (categories, or one step apart)."""
        return None


@dataclass(frozen=True)
class NumericSpec(FeatureSpec):
    """A number that may move within [``low``, ``high``] in ``direction``, by multiples
    of ``step`` (0: any value); ``spread`` normalises its cost; ``center`` stands in
    for a missing value when measuring a change."""

    name: str
    low: float
    high: float
    spread: float = 1.0
    step: float = 0.0
    integer: bool = False
    direction: str = ANY
    center: float = 0.0
    kind: ClassVar[str] = "numeric"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {self.direction!r}")
        if not self.low <= self.high:
            raise ValueError(f"{self.name}: low {self.low} is above high {self.high}")

    def _snap(self, value: float) -> float | int:
        step = max(self.step, 1.0) if self.integer else self.step
        if step > 0:
            value = round(value / step) * step
            value = float(f"{value:.12g}")  # 0.1 * 3 is 0.30000000000000004
        value = min(max(value, self.low), self.high)
        return round(value) if self.integer else float(value)

    def _origin(self, current: Any) -> float:
        return float(current) if _is_number(current) else self.center

    def candidates(self, current: Any, n: int) -> list[Any]:
        origin = self._origin(current)
        bounds = []
        if self.direction in (INCREASE, ANY) and self.high > origin:
            bounds.append(self.high)
        if self.direction in (DECREASE, ANY) and self.low < origin:
            bounds.append(self.low)
        if not _is_number(current):  # a missing value: any value within bounds is a change
            bounds = [b for b in (self.high, self.low) if b != origin] or [self.high]
        out: list[Any] = []
        for bound in bounds:
            for t in np.linspace(0.0, 1.0, n + 1)[1:]:
                value = self._snap(origin + t * (bound - origin))
                if (value != current or not _is_number(current)) and value not in out and self._allowed(current, value):
                    out.append(value)
        return sorted(out, key=lambda v: abs(v - origin))

    def _allowed(self, current: Any, value: float) -> bool:
        if not _is_number(current):
            return True
        if self.direction == INCREASE:
            return value > current
        if self.direction == DECREASE:
            return value < current
        return value != current

    def cost(self, before: Any, after: Any) -> float:
        return abs(float(after) - self._origin(before)) / (self.spread if self.spread > 0 else 1.0)

    def between(self, near: Any, far: Any) -> Any | None:
        middle = self._snap((self._origin(near) + float(far)) / 2)
        if middle in (near, far) or (_is_number(near) and not _strictly_between(middle, near, far)):
            return None
        return middle


@dataclass(frozen=True)
class CategoricalSpec(FeatureSpec):
    """A category that may switch to any of ``values``."""

    name: str
    values: tuple[str, ...]
    kind: ClassVar[str] = "categorical"

    def candidates(self, current: Any, n: int) -> list[Any]:
        return [v for v in self.values if v != current]

    def cost(self, before: Any, after: Any) -> float:
        return 0.0 if before == after else CATEGORY_COST


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and (math.isfinite(float(value)))
    )


def _strictly_between(value: float, a: float, b: float) -> bool:
    return min(a, b) < value < max(a, b)


@dataclass(frozen=True)
class Change:
    """One feature's value before and after, and what the change costs."""

    feature: str
    before: Any
    after: Any
    cost: float


@dataclass(frozen=True)
class Suggestion:
    """A change set and the scorer's answer for exactly the changed row."""

    changes: tuple[Change, ...]
    cost: float
    points: float
    decision: str

    @property
    def features(self) -> frozenset[str]:
        return frozenset(c.feature for c in self.changes)

    def apply(self, row: Mapping[str, Any]) -> Row:
        return {**row, **{c.feature: c.after for c in self.changes}}


@dataclass
class Recourse:
    """The search's answer: the applicant's own points and decision, the suggestions
    (cheapest first; empty when no change within the specs' bounds reaches the target),
    and how many rows were scored to find them."""

    points: float
    decision: str
    target: frozenset[str]
    suggestions: list[Suggestion] = field(default_factory=list)
    evaluated: int = 0

    @property
    def already(self) -> bool:
        """The applicant's own row already reaches the target: nothing to change."""
        return self.decision in self.target

    @property
    def feasible(self) -> bool:
        return self.already or bool(self.suggestions)


class _Counter:
    """The scorer, counting rows and remembering every answer (a row is never scored twice)."""

    def __init__(self, scorer: Scorer, budget: int):
        self.scorer, self.budget, self.evaluated = scorer, budget, 0
        self.seen: dict[tuple, tuple[float, str]] = {}

    @property
    def spent(self) -> bool:
        return self.evaluated >= self.budget

    def __call__(self, rows: list[Row]) -> list[tuple[float, str]]:
        keys = [_key(r) for r in rows]
        todo = {k: r for k, r in zip(keys, rows, strict=True) if k not in self.seen}
        if todo:
            points, decisions = self.scorer(list(todo.values()))
            for k, p, d in zip(todo, points, decisions, strict=True):
                self.seen[k] = (float(p), str(d))
            self.evaluated += len(todo)
        return [self.seen[k] for k in keys]


def _key(row: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in row.items()))


def _changes_cost(specs: Mapping[str, FeatureSpec], row: Row, changes: Mapping[str, Any]) -> float:
    return sum(specs[f].cost(row.get(f), v) for f, v in changes.items()) + FEATURE_COST * len(changes)


def recourse_search(
    row: Mapping[str, Any],
    specs: Iterable[FeatureSpec],
    scorer: Scorer,
    *,
    target: Iterable[str] = ("approve",),
    k: int = 3,
    max_features: int = 3,
    grid: int = 12,
    beam: int = 8,
    moves_per_feature: int = 6,
    refine: int = 6,
    budget: int = 4000,
) -> Recourse:
    """Up to ``k`` minimal change sets of ``row`` (at most ``max_features`` features each,
    only features with a spec) whose scored decision is in ``target``; see the module doc.
    ``budget`` bounds the rows scored (the applicant's own row included)."""
    row = dict(row)
    specs_by_name = {s.name: s for s in specs}
    targets = frozenset(target)
    score = _Counter(scorer, budget)
    ((points, decision),) = score([row])
    result = Recourse(points=points, decision=decision, target=targets)
    if decision in targets or not specs_by_name:
        result.evaluated = score.evaluated
        return result

    found: dict[tuple, dict[str, Any]] = {}  # reaching change sets by their key

    # 1. Line search: each feature alone, the nearest reaching grid value, then bisection.
    singles: list[tuple[str, Any]] = [
        (name, value) for name, spec in specs_by_name.items() for value in spec.candidates(row.get(name), grid)
    ]
    answers = score([{**row, name: value} for name, value in singles])
    partial: dict[str, list[tuple[float, Any]]] = {}  # per feature: (points, value) of moves not reaching
    brackets: dict[tuple[str, int], list[Any]] = {}  # (feature, side) -> [last failing, first reaching]
    for (name, value), (p, d) in zip(singles, answers, strict=True):
        spec = specs_by_name[name]
        side = _side(spec, row.get(name), value)
        if d in targets:
            pair = brackets.setdefault((name, side), [row.get(name), value])
            if spec.cost(row.get(name), value) < spec.cost(row.get(name), pair[1]):
                pair[1] = value
        elif p > points:
            partial.setdefault(name, []).append((p, value))
    for (name, side), pair in brackets.items():
        # The grid is nearest first, so the failing bracket end is the nearest failing value before the reaching one.
        spec = specs_by_name[name]
        fails = [v for v in spec.candidates(row.get(name), grid) if _side(spec, row.get(name), v) == side
                 and spec.cost(row.get(name), v) < spec.cost(row.get(name), pair[1])]  # fmt: skip
        if fails:
            pair[0] = fails[-1]
    _bisect(brackets, row, specs_by_name, score, targets, refine)
    for (name, _), (_, value) in brackets.items():
        found[_key({name: value})] = {name: value}

    # 2. Beam search over pairs and triples of moves that gain points without reaching.
    moves = {name: _spaced(sorted(values, key=lambda pv: specs_by_name[name].cost(row.get(name), pv[1])),
                           moves_per_feature) for name, values in partial.items()}  # fmt: skip
    states: list[dict[str, Any]] = [{name: value} for name, values in moves.items() for _, value in values]
    states = _best(states, row, score, beam)
    for _ in range(max_features - 1):
        if not states or score.spent:
            break
        expanded, seen = [], set()
        for state in states:
            for name, values in moves.items():
                if name in state:
                    continue
                for _, value in values:
                    candidate = {**state, name: value}
                    key = _key(candidate)
                    if key not in seen and not any(_key(s) == key for s in found.values()):
                        seen.add(key)
                        expanded.append(candidate)
        if not expanded:
            break
        expanded = expanded[: max(0, score.budget - score.evaluated)]
        answers = score([{**row, **c} for c in expanded])
        nxt = []
        for candidate, (_, d) in zip(expanded, answers, strict=True):
            if d in targets:
                found[_key(candidate)] = candidate
            else:
                nxt.append(candidate)
        states = _best(nxt, row, score, beam)

    # 3. Shrink the cheapest reaching sets (all in a few batches): drop features the rest
    # do without, then bisect each number towards the applicant's own value.
    ranked = sorted(found.values(), key=lambda c: _changes_cost(specs_by_name, row, c))[: max(4 * k, 12)]
    shrunk = _shrink(ranked, row, specs_by_name, score, targets, refine, max_features)

    # 4. The k cheapest, one per set of changed features; each answer is the scorer's own.
    best: dict[frozenset[str], Suggestion] = {}
    for changes in shrunk:
        p, d = score([{**row, **changes}])[0]
        if d not in targets:
            continue  # cannot happen (every set was scored reaching), kept as the honesty check
        suggestion = Suggestion(
            changes=tuple(
                Change(f, row.get(f), v, round(specs_by_name[f].cost(row.get(f), v), 6))
                for f, v in sorted(changes.items())
            ),
            cost=round(_changes_cost(specs_by_name, row, changes), 6),
            points=p,
            decision=d,
        )
        kept = best.get(suggestion.features)
        if kept is None or (suggestion.cost, -suggestion.points) < (kept.cost, -kept.points):
            best[suggestion.features] = suggestion
    ordered = sorted(best.values(), key=lambda s: (s.cost, len(s.changes), -s.points))
    # A superset of a cheaper suggestion's features adds nothing.
    chosen: list[Suggestion] = []
    for suggestion in ordered:
        if not any(c.features <= suggestion.features for c in chosen):
            chosen.append(suggestion)
    result.suggestions = chosen[:k]
    result.evaluated = score.evaluated
    return result


def _side(spec: FeatureSpec, current: Any, value: Any) -> int:
    """Which way a move goes (+1 up, -1 down; 0 for a category, each its own bracket)."""
    if isinstance(spec, NumericSpec) and _is_number(current):
        return 1 if float(value) > float(current) else -1
    return 0 if isinstance(spec, NumericSpec) else hash(value)


def _bisect(
    brackets: dict[tuple[str, int], list[Any]],
    row: Row,
    specs: Mapping[str, FeatureSpec],
    score: _Counter,
    targets: frozenset[str],
    rounds: int,
) -> None:
    """Narrow each [failing, reaching] bracket, all features in one batch per round."""
    for _ in range(rounds):
        middles = {}
        for key, (near, far) in brackets.items():
            middle = specs[key[0]].between(near, far)
            if middle is not None:
                middles[key] = middle
        if not middles or score.spent:
            return
        answers = score([{**row, key[0]: value} for key, value in middles.items()])
        for (key, value), (_, d) in zip(middles.items(), answers, strict=True):
            brackets[key][1 if d in targets else 0] = value


def _spaced(values: list[tuple[float, Any]], n: int) -> list[tuple[float, Any]]:
    """At most ``n`` of the moves, spread from the smallest to the largest."""
    if len(values) <= n:
        return values
    index = np.unique(np.linspace(0, len(values) - 1, n).round().astype(int))
    return [values[i] for i in index]


def _best(states: list[dict[str, Any]], row: Row, score: _Counter, beam: int) -> list[dict[str, Any]]:
    """The ``beam`` states gaining the most points (already scored: no new rows)."""
    answers = score([{**row, **s} for s in states]) if states else []
    ranked = sorted(zip(states, answers, strict=True), key=lambda sa: -sa[1][0])
    return [s for s, _ in ranked[:beam]]


def _shrink(
    sets: list[dict[str, Any]],
    row: Row,
    specs: Mapping[str, FeatureSpec],
    score: _Counter,
    targets: frozenset[str],
    rounds: int,
    max_features: int,
) -> list[dict[str, Any]]:
    """Each reaching change set made smaller while it still reaches, the sets side by side
    so each step is one batch: first the cheapest reaching subset with one feature fewer
    (repeated), then each numeric change bisected towards the applicant's value, one
    feature of every set at a time (features of one set interact; sets do not)."""
    sets = [dict(c) for c in sets]
    for _ in range(max_features - 1):
        trials = [
            (i, {f: v for f, v in c.items() if f != name}) for i, c in enumerate(sets) if len(c) > 1 for name in c
        ]
        if not trials or score.spent:
            break
        answers = score([{**row, **t} for _, t in trials])
        cheapest: dict[int, dict[str, Any]] = {}
        for (i, subset), (_, d) in zip(trials, answers, strict=True):
            cost = _changes_cost(specs, row, subset)
            if d in targets and (i not in cheapest or cost < _changes_cost(specs, row, cheapest[i])):
                cheapest[i] = subset
        if not cheapest:
            break
        for i, subset in cheapest.items():
            sets[i] = subset
    for position in range(max_features):
        brackets = {}
        for i, changes in enumerate(sets):
            names = sorted(changes)
            if position < len(names):
                name = names[position]
                brackets[i] = [name, row.get(name), changes[name]]
        for _ in range(rounds):
            middles = {}
            for i, (name, near, far) in brackets.items():
                middle = specs[name].between(near, far)
                if middle is not None:
                    middles[i] = middle
            if not middles or score.spent:
                break
            answers = score([{**row, **sets[i], brackets[i][0]: m} for i, m in middles.items()])
            for (i, middle), (_, d) in zip(middles.items(), answers, strict=True):
                brackets[i][2 if d in targets else 1] = middle
        for i, (name, _, far) in brackets.items():
            sets[i][name] = far
    return sets
