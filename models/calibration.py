"""Platt scaling: calibrated log-odds of default = a * raw_logit + b.

Platt, not isotonic regression, because it is affine in the network's logit: an
attribution of the raw logit (DeepLIFT/SHAP, computed on the network) times ``a`` is
an exact attribution of the calibrated log-odds, and additivity still holds
(calibrated = a * (base + sum of contributions) + b). Isotonic regression is a step
function and would break that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # numerically stable for large |z|


class PlattCalibrator:
    """Platt scaling fitted by maximum-likelihood logistic regression on a held-out split.

    ``ridge`` is a tiny L2 penalty on ``a`` and ``b`` that keeps Newton's method finite
    when the calibration split is perfectly separable.
    """

    def __init__(self, *, ridge: float = 1e-6, max_iter: int = 100, tol: float = 1e-10):
        self.ridge = ridge
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, raw_logit: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        z = np.asarray(raw_logit, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if z.shape != y.shape:
            raise ValueError(f"raw_logit and y differ in length: {z.shape} vs {y.shape}")
        if len(np.unique(y)) != 2:
            raise ValueError("the calibration split needs both outcomes")
        design = np.column_stack([z, np.ones_like(z)])
        # Start from slope 1 with the intercept that matches the observed log-odds.
        rate = y.mean()
        theta = np.array([1.0, np.log(rate / (1 - rate)) - np.median(z)])
        loss = self._loss(theta, design, y)
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            self.n_iter_ += 1
            p = _sigmoid(design @ theta)
            gradient = design.T @ (p - y) + self.ridge * theta
            hessian = (design * (p * (1 - p))[:, None]).T @ design + self.ridge * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            # Newton with step halving: the loss is convex, but a full step can overshoot.
            for _ in range(30):
                new_loss = self._loss(theta - step, design, y)
                if new_loss <= loss:
                    break
                step = step / 2
            theta = theta - step
            loss = new_loss
            if np.max(np.abs(step)) < self.tol:
                break
        self.a_ = float(theta[0])
        self.b_ = float(theta[1])
        return self

    def _loss(self, theta: np.ndarray, design: np.ndarray, y: np.ndarray) -> float:
        z = design @ theta
        # log(1 + e^z) - y z, summed; logaddexp keeps it finite for large |z|.
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * self.ridge * theta @ theta)

    def calibrated_logit(self, raw_logit: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of default (bad:good)."""
        return self.a_ * np.asarray(raw_logit, dtype=np.float64) + self.b_

    def pd(self, raw_logit: np.ndarray) -> np.ndarray:
        """Calibrated probability of default."""
        return _sigmoid(self.calibrated_logit(raw_logit))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a_, "b": self.b_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlattCalibrator:
        if data.get("method") != "platt":
            raise ValueError(f"not a Platt calibration: {data.get('method')!r}")
        calibrator = cls()
        calibrator.a_ = float(data["a"])
        calibrator.b_ = float(data["b"])
        return calibrator
