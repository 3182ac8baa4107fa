"""Automatic hyper-parameter tuning with Optuna.

The study's storage is the project database (Optuna's own tables beside ours), so
several workers can run trials of one study at once: each trial is one Celery task.
Trials are judged on the validation split only; the test split stays untouched
until the best trial is trained as a model version and evaluated like any other.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import optuna
from django.db import connection
from django.db.models import F
from django.utils import timezone

from models.families import family_of
from scoring.models import Portfolio, TuningStudy
from scoring.services.hyperparams import tuning_capacity_check
from scoring.services.supervisor import lease_claim_fields, lease_held, worker_identity
from scoring.services.training import (
    SPLITS,
    _credit_data,
    model_version_create,
    model_version_train,
    training_data,
    training_split,
)

logger = logging.getLogger(__name__)


def optuna_storage_url() -> str:
    """The project database as an SQLAlchemy URL for Optuna's RDB storage."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql+psycopg://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _storage() -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(url=optuna_storage_url(), engine_kwargs={"pool_pre_ping": True})


def search_space(trial: optuna.trial.BaseTrial, kind: str) -> dict[str, Any]:
    """The family's own search space (each family declares what is worth tuning)."""
    return family_of(kind).search_space(trial)


def params_from_trial(kind: str, trial_params: dict[str, Any]) -> dict[str, Any]:
    """Turn a trial's sampled values back into the family's hyper-parameters."""
    return search_space(optuna.trial.FixedTrial(trial_params), kind)


def tuning_study_create(
    *, portfolio: Portfolio, kind: str, n_trials: int, seed: int = 0, requested_by=None
) -> TuningStudy:
    tuning_capacity_check(user=requested_by, n_trials=n_trials)
    study = TuningStudy.objects.create(
        portfolio=portfolio,
        kind=kind,
        n_trials=n_trials,
        seed=seed,
        study_name=f"portfolio-{portfolio.pk}-{kind}-{uuid.uuid4().hex[:12]}",
        requested_by=requested_by,
    )
    # Outside any transaction of ours: Optuna writes through its own connection, and
    # on SQLite an open write transaction here would lock it out.
    optuna.create_study(
        study_name=study.study_name, storage=_storage(), direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )  # fmt: skip
    from scoring.audit import audit_record

    audit_record(
        action="model.tune", actor=requested_by, portfolio_id=portfolio.pk, object_type="tuningstudy",
        object_ids=[study.pk], details={"kind": kind, "n_trials": n_trials, "seed": seed},
    )  # fmt: skip
    return study


def tuning_study_start(
    *, portfolio: Portfolio, kind: str, n_trials: int, seed: int = 0, requested_by=None
) -> TuningStudy:
    """Create the study and enqueue one task per trial on the ``train`` queue."""
    from scoring.tasks import tune_trial

    study = tuning_study_create(portfolio=portfolio, kind=kind, n_trials=n_trials, seed=seed, requested_by=requested_by)
    for _ in range(n_trials):
        tune_trial.delay(study.pk)
    return study


def tuning_trial_run(*, study_id: int) -> TuningStudy | None:
    """Run one trial; the worker finishing the last trial trains the best as a model version."""
    study = TuningStudy.objects.filter(pk=study_id).select_related("portfolio").first()
    if study is None or study.status in ("done", "failed"):
        return study
    TuningStudy.objects.filter(pk=study.pk, status="queued").update(status="running")
    # Every worker running one of its trials renews the study's lease (see the supervisor).
    token = worker_identity()
    TuningStudy.objects.filter(pk=study.pk, status="running").update(**lease_claim_fields(token))
    with lease_held(TuningStudy, study.pk, None):
        return _trial_run(study)


def _trial_run(study: TuningStudy) -> TuningStudy | None:
    data, y = training_data(portfolio=study.portfolio, kind=study.kind)
    _, parts = training_split(data, y, seed=study.seed)  # the parts its best trial will train on
    split = {name: data.subset(parts[name]) for name in SPLITS}
    ys = {name: y[parts[name]] for name in SPLITS}
    schema = study.portfolio.schema.definition

    def objective(trial: optuna.Trial) -> float:
        params = search_space(trial, study.kind)
        model = (
            family_of(study.kind)
            .build(seed=study.seed, **params)
            .fit(
                y=ys["train"],
                schema=schema,
                validation=_credit_data(split["validation"], ys["validation"], study.kind),
                calibration=_credit_data(split["calibration"], ys["calibration"], study.kind),
                **split["train"].model_inputs(study.kind),
            )
        )
        return float(model.best_val_auc_)

    optuna_study = optuna.load_study(study_name=study.study_name, storage=_storage())
    # A failing trial is recorded as failed by Optuna and still counts as done here,
    # so one bad configuration cannot leave the study waiting forever.
    optuna_study.optimize(objective, n_trials=1, catch=(Exception,))
    TuningStudy.objects.filter(pk=study.pk).update(trials_done=F("trials_done") + 1)
    try:
        best = optuna_study.best_trial
    except ValueError:  # no trial has completed yet
        best = None
    if best is not None:
        TuningStudy.objects.filter(pk=study.pk).update(best_value=best.value, best_params=best.params)
    # Exactly one worker wins the move to "done" and trains the final model.
    finished = TuningStudy.objects.filter(pk=study.pk, status="running", trials_done__gte=study.n_trials)
    if best is None:
        finished.update(status="failed", error="no trial completed", finished_at=timezone.now())
    elif finished.update(status="done"):
        version = model_version_create(
            portfolio=study.portfolio, kind=study.kind, seed=study.seed,
            hyperparameters=params_from_trial(study.kind, best.params), requested_by=study.requested_by,
            tuning_study=study,
        )  # fmt: skip
        model_version_train(model_version_id=version.pk)
        TuningStudy.objects.filter(pk=study.pk).update(best_model_version=version, finished_at=timezone.now())
    study.refresh_from_db()
    return study
