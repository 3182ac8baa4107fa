"""Scorecard points: log-odds of default to a score where higher means lower risk.

The industry convention ("points to double the odds"):

    factor = pdo / ln 2
    offset = base_score - factor * ln(base_odds)       base_odds are good:bad odds
    score  = offset + factor * ln(good:bad odds)
           = offset - factor * ln(bad:good odds)       = offset - factor * logit(PD)

With the defaults, an applicant at 50:1 good:bad odds (PD = 1/51) scores 600, and
every 20 points doubles the good:bad odds (halves the odds of default). Because the
score is affine in the log-odds, an additive explanation of the calibrated log-odds
(base value + one contribution per feature) becomes an additive explanation in
points: the base value gives ``offset - factor * base`` and each log-odds
contribution ``c`` gives ``-factor * c`` points (a contribution that raises the risk
costs points).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

APPROVE, REFER, DECLINE = "approve", "refer", "decline"


@dataclass(frozen=True)
class PointsScale:
    """The score scale: ``base_score`` points at ``base_odds`` good:bad odds, ``pdo`` points to double them."""

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    def __post_init__(self) -> None:
        if self.base_odds <= 0 or self.pdo <= 0:
            raise ValueError("base_odds and pdo must be positive")

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def score(self, log_odds_default: Any) -> Any:
        """Points for calibrated log-odds of default (bad:good); higher = lower risk."""
        return self.offset - self.factor * np.asarray(log_odds_default, dtype=np.float64)

    def score_from_pd(self, pd: Any) -> Any:
        pd = np.asarray(pd, dtype=np.float64)
        return self.score(np.log(pd) - np.log1p(-pd))

    def log_odds_default(self, score: Any) -> Any:
        """The inverse of ``score``."""
        return (self.offset - np.asarray(score, dtype=np.float64)) / self.factor

    def pd_from_score(self, score: Any) -> Any:
        return 1.0 / (1.0 + np.exp(-self.log_odds_default(score)))

    def points(self, contribution: Any) -> Any:
        """Points for a log-odds-of-default contribution (a risk-raising contribution is negative)."""
        return -self.factor * np.asarray(contribution, dtype=np.float64)

    def base_points(self, base_log_odds: float) -> float:
        """Points of an explanation's base value (the expected calibrated log-odds)."""
        return float(self.score(base_log_odds))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PointsScale:
        return cls(base_score=float(data["base_score"]), base_odds=float(data["base_odds"]), pdo=float(data["pdo"]))


def decide(score: float, *, approve_min_score: float, decline_below_score: float) -> str:
    """Approve at or above ``approve_min_score``, decline below ``decline_below_score``, else refer."""
    if decline_below_score > approve_min_score:
        raise ValueError("decline_below_score must not exceed approve_min_score")
    if score >= approve_min_score:
        return APPROVE
    if score < decline_below_score:
        return DECLINE
    return REFER


def decide_many(scores: Any, *, approve_min_score: float, decline_below_score: float) -> np.ndarray:
    """``decide`` for an array of scores: an array of 'approve' / 'refer' / 'decline'."""
    if decline_below_score > approve_min_score:
        raise ValueError("decline_below_score must not exceed approve_min_score")
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(scores >= approve_min_score, APPROVE, np.where(scores < decline_below_score, DECLINE, REFER))
