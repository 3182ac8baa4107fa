"""Celery tasks: thin wrappers that take ids, reload rows and call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="scoring.tasks.train_model_version", acks_late=True)
def train_model_version(model_version_id: int) -> str:
    from scoring.services.training import model_version_train

    version = model_version_train(model_version_id=model_version_id)
    return "skipped: gone or already claimed" if version is None else version.status


@shared_task(name="scoring.tasks.tune_trial", acks_late=True)
def tune_trial(study_id: int) -> str:
    from scoring.services.tuning import tuning_trial_run

    study = tuning_trial_run(study_id=study_id)
    return "gone" if study is None else f"{study.trials_done}/{study.n_trials}"


@shared_task(name="scoring.tasks.import_file", acks_late=True)
def import_file(job_id: int, path: str, encoding: str = "utf-8") -> str:
    """Run a pending import job; the file must be on storage this worker can read."""
    from scoring.services.ingestion import import_job_run

    job = import_job_run(job_id=job_id, path=path, encoding=encoding)
    return "skipped: gone or already claimed" if job is None else job.status


def _transient_errors() -> tuple[type[BaseException], ...]:
    from django.db import InterfaceError, OperationalError

    return (OperationalError, InterfaceError)


@shared_task(
    name="scoring.tasks.score_chunk",
    bind=True,
    acks_late=True,
    autoretry_for=_transient_errors(),  # a dropped connection or a lock timeout: try again
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)
def score_chunk(self, chunk_id: int) -> str:
    from django.conf import settings

    from scoring.services.batch import score_chunk_run

    result = score_chunk_run(chunk_id=chunk_id)
    if result == "busy":
        # Another worker holds the chunk; look again once its claim would be stale.
        raise self.retry(countdown=settings.SCORE_CHUNK_STALE_SECONDS + 1, max_retries=1000)
    return result


@shared_task(name="scoring.tasks.score_recover_runs")  # score_*: routed to the score queue, where score workers listen
def score_recover_runs() -> int:
    from scoring.services.batch import batch_runs_recover

    return batch_runs_recover()


@shared_task(name="scoring.tasks.nightly_rescore")
def nightly_rescore() -> list[int]:
    """Started by celery beat (schedule editable in the admin: Periodic tasks)."""
    from scoring.services.batch import nightly_runs_start

    return [run.pk for run in nightly_runs_start()]


@shared_task(name="scoring.tasks.audit_seal", time_limit=120, soft_time_limit=100)
def audit_seal() -> int:
    """Seal the audit events written since the last run into signed Merkle batches
    (celery beat, every 5 seconds); the number of events sealed."""
    from scoring.audit import audit_seal as seal

    return seal()


@shared_task(name="scoring.tasks.audit_checkpoint")
def audit_checkpoint() -> int | None:
    """Sign the audit chain's head (celery beat, every 10 minutes); the id of the signed event."""
    from scoring.audit import audit_checkpoint_create

    checkpoint = audit_checkpoint_create()
    return checkpoint.last_event_id if checkpoint is not None else None


@shared_task(name="scoring.tasks.monitoring_run", acks_late=True)
def monitoring_run(model_version_id: int, run_id: int | None = None) -> str:
    """Monitoring reports of a model version on a batch run's scores (queued after each
    nightly run); without a run, on the portfolio's current applicants."""
    from scoring.models import BatchRun, ModelVersion, MonitoringReport
    from scoring.services.monitoring import monitoring_run as run_monitoring

    version = ModelVersion.objects.select_related("portfolio__schema").filter(pk=model_version_id).first()
    run = BatchRun.objects.filter(pk=run_id).first() if run_id is not None else None
    if version is None or (run_id is not None and run is None):
        return "skipped: gone"
    if run is not None and MonitoringReport.objects.filter(run=run, model_version=version).exists():
        return "skipped: already reported"  # a redelivered message
    reports = run_monitoring(portfolio=version.portfolio, model_version=version, run=run)
    return ", ".join(f"{r.kind}: {r.status}" for r in reports)
