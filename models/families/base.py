"""What a model family is: the one unit ``scoring/`` asks about a kind of model.

A family says which inputs it needs (static only, or static + repayment history),
its hyper-parameter space and defaults (``models.params.ParamSpec``), how to build
an estimator from hyper-parameters, how to load a fitted one from a verified
artifact, how to explain it (exact additive contributions to the raw logit,
grouped by source feature) and what tuning samples. Callers never compare kind
strings: they look the family up (``models.families.family_of``) and ask it.

The estimator a family builds follows one contract (``CreditModel`` is the
reference): ``fit(static, y, *, schema, history=None, history_mask=None,
validation=None, calibration=None, on_epoch=None)`` returning ``self``;
``predict_raw_logit`` / ``predict_logit`` / ``predict_pd`` / ``evaluate``;
``calibrator_`` (affine Platt scaling of the raw logit); ``feature_sources_``;
``device_``; ``get_params()``; ``save(target, metrics=...)`` to a path or a
binary file object, returning the SHA-256.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from models import artifacts
from models.params import ParamSpec, check_params


class Explainer(Protocol):
    """Exact additive explanations of one fitted model, safe to call from many threads.

    ``explain`` returns ``(raw, contributions)``: the raw logit per row (n,) and an
    (n, G) array over ``groups_`` such that ``contributions.sum(1) + expected_value_
    == raw`` on every row (1e-6 for trees, 1e-4 for networks)."""

    expected_value_: float
    groups_: list[str]

    def explain(
        self, static: pd.DataFrame, history: np.ndarray | None = None, history_mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...


class Family:
    """Base of every model family; subclasses set the class attributes and override the methods."""

    name: ClassVar[str]
    label: ClassVar[str]
    needs_history: ClassVar[bool] = False
    # The device the family can train on besides the CPU ("cuda" for the networks).
    accelerators: ClassVar[tuple[str, ...]] = ()

    def space(self) -> dict[str, ParamSpec]:
        """Every accepted hyper-parameter, by name."""
        raise NotImplementedError

    def defaults(self) -> dict[str, Any]:
        return {name: spec.default for name, spec in self.space().items()}

    def check(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """The hyper-parameters checked against the space (``models.params.ParamError``)."""
        return check_params(self.space(), hyperparameters)

    def build(self, **hyperparameters: Any) -> Any:
        """An unfitted estimator."""
        raise NotImplementedError

    def load(self, source: artifacts.Source, sha256: str, *, device: str = "cpu") -> Any:
        """A fitted estimator from a verified artifact: a path, the bytes, or a binary file object."""
        raise NotImplementedError

    def background(
        self, model: Any, static: pd.DataFrame, history=None, history_mask=None, *, seed: int
    ) -> dict[str, np.ndarray]:
        """What the explainer needs besides the model, from training rows (arrays, saved as npz)."""
        raise NotImplementedError

    def explainer(self, model: Any, background: dict[str, np.ndarray]) -> Explainer:
        raise NotImplementedError

    def baseline_inputs(self, model: Any, static: pd.DataFrame, history=None, history_mask=None) -> np.ndarray:
        """The inputs of the logistic baseline: what the model sees, flattened to numbers."""
        raise NotImplementedError

    def search_space(self, trial: Any) -> dict[str, Any]:
        """Hyper-parameters drawn from an Optuna trial (or ``optuna.trial.FixedTrial``)."""
        raise NotImplementedError

    def max_epochs(self, hyperparameters: dict[str, Any]) -> int | None:
        """For progress reports: the most epochs (or boosting rounds) fitting may run."""
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "label": self.label, "needs_history": self.needs_history,
            "space": {name: spec.to_dict() for name, spec in self.space().items()},
        }  # fmt: skip
