"""The only bridge between Django and the pure ``models`` package: loading a model
version's artifact (once per process, verified against its recorded SHA-256) and
turning stored applicants into the arrays the model reads."""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from models.training import CreditModel
from scoring.models import ModelVersion
from scoring.services.datasets import PortfolioData

_lock = threading.Lock()
_loaded: dict[tuple[int, str], CreditModel] = {}


def artifact_path_for(version: ModelVersion) -> Path:
    return Path(settings.ARTIFACT_DIR) / f"portfolio-{version.portfolio_id}" / f"v{version.version}-{version.kind}.pt"


def model_load(version: ModelVersion) -> CreditModel:
    """The fitted model of ``version``; loaded from disk on first use in this process.
    Keyed by id and hash, so a replaced champion is picked up on the next call."""
    key = (version.pk, version.artifact_sha256)
    model = _loaded.get(key)
    if model is None:
        with _lock:
            model = _loaded.get(key)
            if model is None:
                model = CreditModel.load(version.artifact_path, version.artifact_sha256)
                _loaded[key] = model
    return model


def model_inputs(model: CreditModel, data: PortfolioData) -> dict:
    """Keyword arguments of ``CreditModel.predict_*`` for stored applicants."""
    if model.kind == "cnn":
        return {"static": data.static, "history": data.history, "history_mask": data.history_mask}
    return {"static": data.static}
