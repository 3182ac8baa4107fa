"""Retry and cancel of trainings, tuning studies and imports: one rule for every
entry point (API, portal, the ``job`` command).

A failed job (its worker gone, as the supervisor found, or an error) is retried in
place: the same row goes back to queued/pending and a message is sent. A cancelled
job is marked failed with who cancelled it, so it can be retried like any other.
Each is a conditional update (two clicks retry once) and is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from scoring.models import ImportJob, ModelVersion, TuningStudy
from scoring.permissions import has_portfolio_perm
from scoring.services.errors import ConflictError, ForbiddenError


class JobStateError(ConflictError):
    """The job's state forbids this (only failed jobs are retried; finished ones are not cancelled)."""

    code = "job_state"


# What each kind of job needs: the grant, and a name for messages and audit events.
_PERMS = {"modelversion": "train_portfolio", "tuningstudy": "train_portfolio", "importjob": "import_portfolio"}


def _check(user, obj, object_type: str) -> None:
    # user None: a management command, run by an operator of the machine.
    if user is not None and not has_portfolio_perm(user, obj.portfolio_id, _PERMS[object_type]):
        raise ForbiddenError("You may not retry or cancel jobs of this portfolio.")


def _audit(action: str, obj, user, object_type: str, **details) -> None:
    from scoring.audit import audit_record

    audit_record(
        action=action, actor=user, portfolio_id=obj.portfolio_id, object_type=object_type, object_ids=[obj.pk],
        details=details,
    )  # fmt: skip


def _who(user) -> str:
    return f"by {user.get_username()}" if user is not None else "from the command line"


# --- Trainings -------------------------------------------------------------------


def model_version_retry(*, version: ModelVersion, user=None) -> ModelVersion:
    """A failed training goes back to the queue, with the same version number and settings."""
    from scoring.tasks import train_model_version

    _check(user, version, "modelversion")
    with transaction.atomic():
        retried = ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.STATUS_FAILED).update(
            status=ModelVersion.STATUS_QUEUED, error="", progress={}, started_at=None, worker="", heartbeat_at=None
        )
        if not retried:
            raise JobStateError(f"Only a failed training can be retried; this one is {_status(version)}.")
        _audit("model.retry", version, user, "modelversion", previous_error=version.error[:500])
        transaction.on_commit(lambda: train_model_version.delay(version.pk))
    version.refresh_from_db()
    return version


def model_version_cancel(*, version: ModelVersion, user=None) -> ModelVersion:
    """A queued or running training stops (a running fit at its next epoch) and is marked failed."""
    _check(user, version, "modelversion")
    cancelled = ModelVersion.objects.filter(
        pk=version.pk, status__in=[ModelVersion.STATUS_QUEUED, ModelVersion.STATUS_TRAINING]
    ).update(status=ModelVersion.STATUS_FAILED, error=f"Cancelled {_who(user)}.", progress={"phase": "cancelled"})
    if not cancelled:
        raise JobStateError(f"Only a queued or running training can be cancelled; this one is {_status(version)}.")
    _audit("model.cancel", version, user, "modelversion")
    version.refresh_from_db()
    return version


def _status(obj) -> str:
    return type(obj).objects.filter(pk=obj.pk).values_list("status", flat=True).first() or "gone"


# --- Tuning studies --------------------------------------------------------------


def tuning_study_retry(*, study: TuningStudy, user=None) -> TuningStudy:
    """A failed study runs its remaining trials (those that finished are kept in Optuna's storage)."""
    from scoring.tasks import tune_trial

    _check(user, study, "tuningstudy")
    with transaction.atomic():
        retried = TuningStudy.objects.filter(pk=study.pk, status="failed").update(
            status="running", error="", finished_at=None, heartbeat_at=timezone.now(), worker=""
        )
        if not retried:
            raise JobStateError(f"Only a failed tuning study can be retried; this one is {_status(study)}.")
        remaining = max(study.n_trials - study.trials_done, 1)
        _audit("model.tune_retry", study, user, "tuningstudy", trials=remaining)

        def enqueue():
            for _ in range(remaining):
                tune_trial.delay(study.pk)

        transaction.on_commit(enqueue)
    study.refresh_from_db()
    return study


def tuning_study_cancel(*, study: TuningStudy, user=None) -> TuningStudy:
    """The study's waiting trials are skipped; a trial already running finishes uncounted."""
    _check(user, study, "tuningstudy")
    cancelled = TuningStudy.objects.filter(pk=study.pk, status__in=["queued", "running"]).update(
        status="failed", error=f"Cancelled {_who(user)}.", finished_at=timezone.now()
    )
    if not cancelled:
        raise JobStateError(f"Only a queued or running study can be cancelled; this one is {_status(study)}.")
    _audit("model.tune_cancel", study, user, "tuningstudy")
    study.refresh_from_db()
    return study


# --- Imports -------------------------------------------------------------------


def import_job_retry(*, job: ImportJob, user=None) -> ImportJob:
    """A failed import runs again from its file, when the file is still there (an import
    writes in one transaction, so a failed one wrote nothing to undo)."""
    from scoring.tasks import import_file

    _check(user, job, "importjob")
    from scoring.services.ingestion.run import import_source_size

    if not job.source or import_source_size(job.source) is None:
        raise JobStateError("The file of this import is gone: upload it again to import it.")
    with transaction.atomic():
        retried = ImportJob.objects.filter(pk=job.pk, status=ImportJob.STATUS_FAILED).update(
            status=ImportJob.STATUS_PENDING, message="", errors=[], error_count=0, rows_total=0, rows_valid=0,
            rows_invalid=0, rows_created=0, rows_updated=0, rows_unchanged=0, started_at=None, finished_at=None,
            worker="", heartbeat_at=None,
        )  # fmt: skip
        if not retried:
            raise JobStateError(f"Only a failed import can be retried; this one is {_status(job)}.")
        _audit("import.retry", job, user, "importjob", previous_message=job.message[:500])
        transaction.on_commit(lambda: import_file.delay(job.pk, job.source))
    job.refresh_from_db()
    return job


def import_job_cancel(*, job: ImportJob, user=None) -> ImportJob:
    """A pending import is cancelled. A running one is not: it writes everything in one
    transaction at its end, so stopping it half-way would save nothing, and its lease
    tells the supervisor if its process dies."""
    _check(user, job, "importjob")
    cancelled = ImportJob.objects.filter(pk=job.pk, status=ImportJob.STATUS_PENDING).update(
        status=ImportJob.STATUS_FAILED, message=f"Cancelled {_who(user)}; nothing was written.",
        finished_at=timezone.now(),
    )  # fmt: skip
    if not cancelled:
        raise JobStateError(f"Only a pending import can be cancelled; this one is {_status(job)}.")
    _audit("import.cancel", job, user, "importjob")
    job.refresh_from_db()
    return job


RETRY: dict[str, Callable[..., Any]] = {
    "training": model_version_retry,
    "tuning": tuning_study_retry,
    "import": import_job_retry,
}
CANCEL: dict[str, Callable[..., Any]] = {
    "training": model_version_cancel,
    "tuning": tuning_study_cancel,
    "import": import_job_cancel,
}
MODELS: dict[str, tuple[type[ModelVersion] | type[TuningStudy] | type[ImportJob], str]] = {
    "training": (ModelVersion, "version"), "tuning": (TuningStudy, "study"), "import": (ImportJob, "job"),
}  # fmt: skip


def job_act(*, action: str, kind: str, pk: int, user=None):
    """``retry``/``cancel`` the ``kind`` (training, tuning, import) job ``pk``, for the command."""
    from scoring.services.errors import NotFoundError

    model, argument = MODELS[kind]
    obj = model.objects.filter(pk=pk).first()
    if obj is None:
        raise NotFoundError(f"No {kind} job {pk}.")
    return (RETRY if action == "retry" else CANCEL)[kind](**{argument: obj, "user": user})
