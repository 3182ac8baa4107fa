"""The only bridge between Django and the pure ``models`` package: loading a model
version's artifact (once per process, verified against its recorded SHA-256) and
turning stored applicants into the arrays the model reads."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import torch
from django.conf import settings

from scoring.models import ModelVersion
from scoring.storage import ARTIFACTS, storage

_lock = threading.RLock()  # decider_load holds it while model_load takes it again
_loaded: dict[tuple[int, str], Any] = {}


def artifact_name_for(version: ModelVersion) -> str:
    """A new, never-reused name for the version's artifact in the artifacts storage.
    Ids and version numbers repeat across databases (a staging copy, a restored backup,
    a bench) that share one artifact store, so a random part keeps one from overwriting
    another's model; the row records the name and the SHA-256 it must match."""
    return f"portfolio-{version.portfolio_id}/v{version.version}-{version.kind}-{uuid.uuid4().hex[:12]}.pt"


def _artifact_open(name: str):
    return storage(ARTIFACTS).open(name, "rb")


def model_load(version: ModelVersion) -> Any:
    """The fitted model of ``version``; read from the artifacts storage on first use in this process.
    Keyed by id and hash, so a replaced champion is picked up on the next call."""
    key = (version.pk, version.artifact_sha256)
    model = _loaded.get(key)
    if model is None:
        with _lock:
            model = _loaded.get(key)
            if model is None:
                torch.set_num_threads(settings.TORCH_NUM_THREADS)  # a scoring process (see settings)
                with _artifact_open(version.artifact_name) as source:  # hash checked before parsing
                    model = version.family.load(source, version.artifact_sha256)
                _loaded[key] = model
    return model


_deciders: dict[tuple, object] = {}


def decider_load(version: ModelVersion):
    """The ``CreditDecider`` of a version under its portfolio's current points scale and
    cutoffs (cached per process; a changed policy or version builds a new one)."""
    from models.reasons import CreditDecider, background_read
    from models.scaling import PointsScale

    portfolio = version.portfolio
    policy = (
        portfolio.base_score,
        portfolio.base_odds,
        portfolio.pdo,
        portfolio.approve_min_score,
        portfolio.decline_below_score,
    )
    key = (version.pk, version.artifact_sha256, version.background_sha256, policy)
    decider = _deciders.get(key)
    if decider is None:
        with _lock:
            decider = _deciders.get(key)
            if decider is None:
                with _artifact_open(version.background_name) as source:
                    background = background_read(source, version.background_sha256)
                decider = CreditDecider(
                    model_load(version),
                    background,
                    scale=PointsScale(base_score=policy[0], base_odds=policy[1], pdo=policy[2]),
                    approve_min_score=policy[3],
                    decline_below_score=policy[4],
                ).fit()
                _deciders[key] = decider
    return decider
