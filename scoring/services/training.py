"""Training credit models into the registry.

``model_training_start`` records a queued ``ModelVersion`` and enqueues the Celery
task; ``model_version_train`` (run by the task, or in-process with ``--sync``)
claims it, reads the portfolio, fits, evaluates against the logistic-regression
baseline on the same split, writes the artifact and records everything a validator
needs to reproduce it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from models.artifacts import sha256_bytes
from models.families import family_of
from models.features import input_columns
from models.metrics import baseline_logistic
from models.reasons import background_bytes, background_sample
from models.screen import screen as leakage_screen
from models.splits import out_of_time_split, stratified_split
from models.training import CreditData
from riskapp.version import code_version
from scoring.inference import artifact_name_for
from scoring.models import ModelVersion, Portfolio
from scoring.services.datasets import PortfolioData, attach_outcomes, portfolio_data
from scoring.services.errors import ConflictError, public_error_text
from scoring.services.hyperparams import HyperparameterError, hyperparameters_validate, training_capacity_check
from scoring.services.monitoring import monitoring_reference_build
from scoring.services.supervisor import lease_claim_fields, lease_held, worker_identity
from scoring.storage import ARTIFACTS, storage

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "calibration", "test")
EpochCallback = Callable[[int, float, float], None]


class TrainingDataError(ConflictError, ValueError):
    """The portfolio cannot train this kind of model (no outcomes, one class, no history)."""


class TrainingStopped(RuntimeError):
    """The version left ``training`` under a running fit (cancelled, or failed by the
    supervisor): the fit stops at its next epoch and writes nothing."""


def _next_version(portfolio: Portfolio) -> int:
    Portfolio.objects.select_for_update().filter(pk=portfolio.pk).first()  # serialise version numbers
    latest = ModelVersion.objects.filter(portfolio=portfolio).aggregate(v=Max("version"))["v"]
    return (latest or 0) + 1


@transaction.atomic
def model_version_create(
    *,
    portfolio: Portfolio,
    kind: str,
    seed: int = 0,
    hyperparameters: dict[str, Any] | None = None,
    requested_by=None,
    tuning_study=None,
    training_group: uuid.UUID | None = None,
) -> ModelVersion:
    family = family_of(kind)  # UnknownFamily (a ValueError) names the registered kinds
    # Every entry point comes here: values outside the family's space are a 400 now, not a worker failure later.
    hyperparameters = hyperparameters_validate(kind=kind, values=hyperparameters)
    family.build(seed=seed, **hyperparameters)
    version = ModelVersion.objects.create(
        portfolio=portfolio,
        version=_next_version(portfolio),
        kind=kind,
        schema=portfolio.schema,
        seed=seed,
        hyperparameters=hyperparameters or {},
        trained_by=requested_by,
        tuning_study=tuning_study,
        training_group=training_group,
    )
    from scoring.audit import audit_record

    audit_record(
        action="model.train", actor=requested_by, portfolio_id=portfolio.pk, object_type="modelversion",
        object_ids=[version.pk],
        details={"kind": kind, "version": version.version, "seed": seed, "tuning_study": tuning_study and tuning_study.pk,
                 "training_group": training_group and str(training_group)},
    )  # fmt: skip
    return version


def model_training_start(
    *, portfolio: Portfolio, kind: str, seed: int = 0, hyperparameters: dict | None = None, requested_by=None
) -> ModelVersion:
    """Record a queued model version and enqueue its training on the ``train`` queue."""
    from scoring.tasks import train_model_version

    training_capacity_check(user=requested_by)
    with transaction.atomic():
        version = model_version_create(
            portfolio=portfolio, kind=kind, seed=seed, hyperparameters=hyperparameters, requested_by=requested_by
        )
        transaction.on_commit(lambda: train_model_version.delay(version.pk))
    return version


class TrainingRequestError(HyperparameterError):
    """A training request for several families that does not hold together (400)."""

    code = "invalid_training_request"


def model_group_create(
    *,
    portfolio: Portfolio,
    kinds: list[str],
    seed: int = 0,
    hyperparameters: dict[str, dict[str, Any]] | None = None,
    requested_by=None,
) -> list[ModelVersion]:
    """One queued version per family, in one training group: the same portfolio rows and
    seed give every one of them the same split (``training_split``), so the leaderboard
    compares them on the same test rows. ``hyperparameters`` maps a kind to its own
    values (a family's space is its own); kinds left out train with their defaults."""
    kinds = list(dict.fromkeys(kinds))  # each family once, in the order asked
    if not kinds:
        raise TrainingRequestError("Name at least one model family to train.", details={"kinds": ["at least one"]})
    hyperparameters = hyperparameters or {}
    strangers = sorted(set(hyperparameters) - set(kinds))
    if strangers or not all(isinstance(v, dict) for v in hyperparameters.values()):
        raise TrainingRequestError(
            "With several kinds, hyperparameters map each kind trained to its own values, "
            f'e.g. {{"{kinds[0]}": {{...}}}}' + (f"; not trained: {', '.join(strangers)}" if strangers else "") + ".",
            details={"hyperparameters": [f"keys among {', '.join(kinds)}, each an object"]},
        )
    group = uuid.uuid4() if len(kinds) > 1 else None
    with transaction.atomic():
        return [
            model_version_create(
                portfolio=portfolio,
                kind=kind,
                seed=seed,
                hyperparameters=hyperparameters.get(kind),
                requested_by=requested_by,
                training_group=group,
            )
            for kind in kinds
        ]


def model_group_training_start(
    *,
    portfolio: Portfolio,
    kinds: list[str],
    seed: int = 0,
    hyperparameters: dict[str, dict[str, Any]] | None = None,
    requested_by=None,
) -> list[ModelVersion]:
    """``model_group_create``, each version enqueued on the ``train`` queue."""
    from scoring.tasks import train_model_version

    training_capacity_check(user=requested_by, adding=len(set(kinds)))
    with transaction.atomic():
        versions = model_group_create(
            portfolio=portfolio, kinds=kinds, seed=seed, hyperparameters=hyperparameters, requested_by=requested_by
        )
        for version in versions:
            transaction.on_commit(partial(train_model_version.delay, version.pk))
    return versions


def training_data(*, portfolio: Portfolio, kind: str) -> tuple[PortfolioData, np.ndarray]:
    """Applicants with an observed outcome, with the history for a CNN; y = 1 for default."""
    family = family_of(kind)
    data = attach_outcomes(portfolio_data(portfolio=portfolio, with_history=family.needs_history), portfolio=portfolio)
    assert data.defaulted is not None
    observed = np.flatnonzero(~np.isnan(data.defaulted))
    data = data.subset(observed)
    y = np.asarray(data.defaulted, dtype=np.int64)
    if len(y) < 50 or len(np.unique(y)) < 2:
        raise TrainingDataError(f"{portfolio} has {len(y)} applicants with outcomes and needs ≥ 50 with both outcomes.")
    if family.needs_history and (data.history_mask is None or not data.history_mask.any()):
        raise TrainingDataError(f"{portfolio} has no repayment history: train an MLP instead.")
    return data, y


def _credit_data(data: PortfolioData, y: np.ndarray, kind: str) -> CreditData:
    if family_of(kind).needs_history:
        return CreditData(data.static, y, data.history, data.history_mask)
    return CreditData(data.static, y)


def _baseline_inputs(model: Any, data: PortfolioData) -> np.ndarray:
    """The baseline sees the same inputs as the model, flattened (the family says how)."""
    return family_of(model.kind).baseline_inputs(model, **data.model_inputs(model.kind))


def split_schemes(data: PortfolioData, y: np.ndarray, *, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Every way of splitting these rows that applies, the one the model is trained on
    first: out of time (the newest months are the test) when the schema dates the
    applications and each part holds both outcomes, then the seeded stratified split."""
    schemes = {}
    if data.application_dates is not None:
        in_time = out_of_time_split(data.application_dates)
        if in_time is not None and all(len(np.unique(y[in_time[name]])) == 2 for name in SPLITS):
            schemes["out_of_time"] = in_time
    schemes["stratified"] = stratified_split(y, seed=seed)
    return schemes


def training_split(data: PortfolioData, y: np.ndarray, *, seed: int) -> tuple[str, dict[str, np.ndarray]]:
    """The scheme a version is trained on, and its parts (what monitoring and comparisons reuse)."""
    return next(iter(split_schemes(data, y, seed=seed).items()))


@dataclass
class FitResult:
    """A fitted model and what training records beside it."""

    model: Any
    metrics: dict  # train / validation / test of the scheme the model was trained on
    baseline: dict  # {"test": logistic regression on the same rows}
    background: dict
    validations: dict  # scheme -> test metrics, baseline, rows and dates; "trained_on"
    screen: dict  # models.screen.screen of the training rows and the test figures
    timing: dict  # fit_seconds of the model's scheme, explained_rows_per_s on its test rows


def _fit(data: PortfolioData, y: np.ndarray, parts: dict, *, schema: dict, kind: str, seed: int,
         hyperparameters: dict, on_epoch: EpochCallback | None) -> tuple[Any, dict, dict]:  # fmt: skip
    split = {name: data.subset(parts[name]) for name in SPLITS}
    ys = {name: y[parts[name]] for name in SPLITS}
    model = (
        family_of(kind)
        .build(seed=seed, **hyperparameters)
        .fit(
            y=ys["train"],
            schema=schema,
            validation=_credit_data(split["validation"], ys["validation"], kind),
            calibration=_credit_data(split["calibration"], ys["calibration"], kind),
            on_epoch=on_epoch,
            **split["train"].model_inputs(kind),
        )
    )
    metrics = {
        name: model.evaluate(y=ys[name], **split[name].model_inputs(kind)) for name in ("train", "validation", "test")
    }
    baseline = baseline_logistic(
        _baseline_inputs(model, split["train"]), ys["train"], _baseline_inputs(model, split["test"]), ys["test"]
    )
    assert isinstance(baseline, dict)  # without return_pd: the metrics alone
    return model, metrics, baseline


def test_rows_sha256(data: PortfolioData, parts: dict) -> str:
    """Which applicants a scheme tests on: versions with the same hash were measured on the same rows."""
    return hashlib.sha256(np.asarray(data.applicant_ids[parts["test"]], dtype=np.int64).tobytes()).hexdigest()


def _scheme_summary(data: PortfolioData, parts: dict, metrics: dict, baseline: dict) -> dict:
    summary: dict[str, Any] = {"test": metrics["test"], "baseline_test": baseline,
                               "rows": {name: len(parts[name]) for name in SPLITS},
                               "test_rows_sha256": test_rows_sha256(data, parts)}  # fmt: skip
    if data.application_dates is not None:
        dates = {}
        for name in SPLITS:
            known = data.application_dates[parts[name]]
            known = known[~np.isnat(known)]
            dates[name] = [str(known.min()), str(known.max())] if len(known) else None
        summary["dates"] = dates
    return summary


def model_fit_evaluate(
    *,
    data: PortfolioData,
    y: np.ndarray,
    schema: dict,
    kind: str,
    seed: int,
    hyperparameters: dict,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Fit on the first split scheme that applies (train / validation for early stopping
    / calibration for Platt scaling / test); metrics on each part, and the logistic
    baseline fitted on the same train part and measured on the same test part. Each
    other scheme fits the same family on its own parts, for its test figures only
    (out of time beside stratified: how much a random split flatters the model). The
    leakage screen reads the training rows of the model's scheme."""
    schemes = split_schemes(data, y, seed=seed)
    fitted = {}
    fit_seconds = 0.0
    for position, (scheme, parts) in enumerate(schemes.items()):
        started = time.perf_counter()
        fitted[scheme] = _fit(
            data, y, parts, schema=schema, kind=kind, seed=seed, hyperparameters=hyperparameters,
            on_epoch=on_epoch if position == 0 else None,
        )  # fmt: skip
        if position == 0:
            fit_seconds = time.perf_counter() - started  # with its evaluation and baseline: a little over the fit
    trained_on, parts = next(iter(schemes.items()))
    model, metrics, baseline = fitted[trained_on]
    validations: dict[str, Any] = {"trained_on": trained_on}
    for scheme, (_, scheme_metrics, scheme_baseline) in fitted.items():
        validations[scheme] = _scheme_summary(data, schemes[scheme], scheme_metrics, scheme_baseline)
    train = data.subset(parts["train"])
    background = background_sample(model, seed=seed, **train.model_inputs(kind))
    categorical = [c["name"] for c in input_columns(schema) if c["role"] == "categorical"]
    screen = leakage_screen(
        train.static, y[parts["train"]], categorical=categorical, seed=seed,
        model_auc=metrics["test"].get("auc"), baseline_auc=baseline.get("auc"),
    )  # fmt: skip
    timing = {"fit_seconds": round(fit_seconds, 3),
              **_explain_rate(model, data.subset(parts["test"]), background, kind=kind)}  # fmt: skip
    return FitResult(model, metrics, {"test": baseline}, background, validations, screen, timing)


EXPLAIN_TIMING_ROWS = 1000


def _explain_rate(model: Any, test: PortfolioData, background: dict, *, kind: str) -> dict:
    """Exact explanations per second on (up to EXPLAIN_TIMING_ROWS of) the test rows,
    measured once at training time: the leaderboard's "rows/s explained"."""
    rows = test.subset(np.arange(min(len(test), EXPLAIN_TIMING_ROWS)))
    explainer = family_of(kind).explainer(model, background)
    started = time.perf_counter()
    explainer.explain(**rows.model_inputs(kind))
    seconds = max(time.perf_counter() - started, 1e-9)
    return {"explained_rows": len(rows), "explained_rows_per_s": round(len(rows) / seconds, 1)}


def _progress_recorder(version: ModelVersion, max_epochs: int) -> EpochCallback:
    history: list[dict] = []

    def record(epoch: int, train_loss: float, val_auc: float) -> None:
        history.append({"epoch": epoch, "train_loss": round(train_loss, 6), "val_auc": round(val_auc, 6)})
        progress = {"phase": "training", "epoch": epoch, "max_epochs": max_epochs, "train_loss": train_loss,
                    "val_auc": val_auc, "history": history}  # fmt: skip
        if not ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.STATUS_TRAINING).update(
            progress=progress
        ):
            raise TrainingStopped(f"model version {version.pk} is no longer training (cancelled or failed)")

    return record


def model_version_train(*, model_version_id: int, on_epoch: EpochCallback | None = None) -> ModelVersion | None:
    """Train a queued model version. Returns None when it is gone or another worker
    already claimed it (a redelivered message)."""
    token = worker_identity()
    claimed = ModelVersion.objects.filter(pk=model_version_id, status=ModelVersion.STATUS_QUEUED).update(
        status=ModelVersion.STATUS_TRAINING, started_at=timezone.now(), progress={"phase": "loading data"},
        **lease_claim_fields(token),
    )  # fmt: skip
    if not claimed:
        logger.info("model version %s: gone or already claimed by another worker", model_version_id)
        return None
    # The lease tells the supervisor this worker is alive; one that stops renewing it
    # (killed) has its version marked failed, and retry offered.
    with lease_held(ModelVersion, model_version_id, token):
        return _train_claimed(model_version_id, token, on_epoch)


def _artifacts_store(version: ModelVersion, model, metrics: dict, background: dict) -> tuple[str, str, str]:
    """Write the model file, then its explainer background, to the artifacts storage;
    return (name, model SHA-256, background SHA-256). If the second write fails (a full
    disk, a bucket refusing), the first is deleted: no orphan is left behind."""
    buffer = io.BytesIO()
    sha256 = model.save(buffer, metrics={"test": metrics["test"]})
    store = storage(ARTIFACTS)
    name = store.save(artifact_name_for(version), ContentFile(buffer.getvalue()))
    data = background_bytes(background)
    try:
        background_name = store.save(f"{name}.background.npz", ContentFile(data))
        if background_name != f"{name}.background.npz":  # the storage renamed it: no reader would find it
            store.delete(background_name)
            raise OSError(f"the artifacts storage stored the background of {name} as {background_name}")
    except BaseException:
        _artifacts_delete([name])
        raise
    return name, sha256, sha256_bytes(data)


def _artifacts_delete(names: list[str]) -> None:
    """Delete written artifacts no row will name (a failed or dropped training); what
    cannot be deleted now is left to the supervisor's orphan sweep."""
    store = storage(ARTIFACTS)
    for name in names:
        try:
            store.delete(name)
        except Exception:
            logger.warning("artifact %s not deleted; the supervisor's orphan sweep will", name, exc_info=True)


def _train_claimed(model_version_id: int, token: str, on_epoch: EpochCallback | None) -> ModelVersion | None:
    version = ModelVersion.objects.select_related("portfolio", "schema").get(pk=model_version_id)
    written: list[str] = []  # artifacts stored so far: deleted again if the training does not end recorded
    try:
        data, y = training_data(portfolio=version.portfolio, kind=version.kind)
        max_epochs = version.family.max_epochs(version.hyperparameters)
        recorder = _progress_recorder(version, max_epochs)

        def each_epoch(epoch: int, loss: float, auc: float) -> None:
            recorder(epoch, loss, auc)
            if on_epoch:
                on_epoch(epoch, loss, auc)

        fit = model_fit_evaluate(
            data=data, y=y, schema=version.schema.definition, kind=version.kind, seed=version.seed,
            hyperparameters=version.hyperparameters, on_epoch=each_epoch,
        )  # fmt: skip
        model, metrics = fit.model, fit.metrics
        name, sha256, background_sha256 = _artifacts_store(version, model, metrics, fit.background)
        written += [name, f"{name}.background.npz"]
        # What monitoring compares later populations with: the training split, as fitted.
        train_rows = data.subset(training_split(data, y, seed=version.seed)[1]["train"])
        reference = monitoring_reference_build(model=model, data=train_rows, schema=version.schema, kind=version.kind)
    except Exception as exc:
        _artifacts_delete(written)
        if isinstance(exc, TrainingStopped):
            logger.info("model version %s: %s", version.pk, exc)
            return None
        ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.STATUS_TRAINING, worker=token).update(
            status=ModelVersion.STATUS_FAILED,
            # The user sees the error's sentence; its traceback goes to the worker's log.
            error=public_error_text(f"{type(exc).__name__}: {exc}"),
            progress={"phase": "failed"},
        )
        if isinstance(exc, TrainingDataError):
            version.refresh_from_db()
            return version
        logger.error("Training model version %s failed:\n%s", version.pk, traceback.format_exc())
        raise
    version.status = ModelVersion.STATUS_TRAINED
    version.metrics = {**metrics, "timing": fit.timing}
    version.baseline_metrics = fit.baseline
    version.validations = fit.validations
    version.screen = fit.screen
    version.device = model.device_
    version.training_data_fingerprint = data.fingerprint()
    version.training_rows = len(y)
    version.code_version = code_version()
    version.artifact_name = name
    version.artifact_sha256 = sha256
    version.background_sha256 = background_sha256
    version.monitoring_reference = reference
    version.trained_at = timezone.now()
    version.progress = {**ModelVersion.objects.get(pk=version.pk).progress, "phase": "done"}
    version.hyperparameters = {**model.get_params(), **version.hyperparameters}
    with transaction.atomic():
        # Fenced: a version cancelled, or marked failed while this worker was stalled,
        # stays so (its retry trains it afresh); this late result is dropped.
        if not ModelVersion.objects.select_for_update().filter(
            pk=version.pk, status=ModelVersion.STATUS_TRAINING, worker=token
        ):
            logger.warning(
                "model version %s: no longer ours (cancelled or failed meanwhile); result dropped", version.pk
            )
            transaction.on_commit(lambda: _artifacts_delete(written))
            return None
        version.save()
    return version
