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
    from kombu.exceptions import OperationalError as BrokerError

    return (OperationalError, InterfaceError, BrokerError)


def retry_within_budget(
    task,
    exc: BaseException,
    *,
    first_failed_at: float | None,
    budget_seconds: float | None = None,
    max_delay_seconds: float | None = None,
    scheduled=None,
    **kwargs,
):
    """Retry ``task`` after a transient error with exponential backoff and jitter, for as
    long as ``TASK_RETRY_BUDGET_SECONDS`` (or ``budget_seconds``) after its first failure:
    an outage is measured in time, so a retry count runs out during a long one (8 retries
    were 4 minutes). The first failure's time travels with the message; past the budget
    the error is raised. ``scheduled(delay)``, if given, is told the delay before the retry
    is sent (a row records when it is due)."""
    import random
    import time

    from django.conf import settings

    budget = settings.TASK_RETRY_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    max_delay = settings.TASK_RETRY_MAX_DELAY_SECONDS if max_delay_seconds is None else max_delay_seconds
    first_failed_at = first_failed_at or time.time()
    if time.time() - first_failed_at > budget:
        raise exc
    delay = min(2 ** min(task.request.retries, 10), max_delay)
    delay = delay * (0.5 + random.random() / 2)  # jitter
    if scheduled is not None:
        scheduled(delay)
    return task.retry(exc=exc, countdown=delay, max_retries=None, kwargs={**kwargs, "first_failed_at": first_failed_at})


@shared_task(name="scoring.tasks.score_chunk", bind=True, acks_late=True)
def score_chunk(self, chunk_id: int, first_failed_at: float | None = None) -> str:
    from django.db import close_old_connections

    from scoring.services.batch import score_chunk_run

    try:
        return score_chunk_run(chunk_id=chunk_id)
    except _transient_errors() as exc:  # a dropped connection, a lock or statement timeout
        close_old_connections()
        return retry_within_budget(self, exc, first_failed_at=first_failed_at, chunk_id=chunk_id)


# score_*: routed to the score queue; the supervisor's own timer in each worker sends it
# to a queue of that worker instead (riskapp/celery.py).
@shared_task(name="scoring.tasks.score_supervise", expires=300)
def score_supervise() -> dict[str, int]:
    """Repair stale chunk claims, lost chunk messages, complete runs left unfinished,
    and trainings, tunings and imports whose worker is gone (scoring.services.supervisor)."""
    from scoring.services.supervisor import supervise

    return supervise()


@shared_task(name="scoring.tasks.score_recover_runs")  # older beat schedules and start-up
def score_recover_runs() -> dict[str, int]:
    from scoring.services.supervisor import supervise

    return supervise()


@shared_task(name="scoring.tasks.nightly_rescore")
def nightly_rescore() -> list[int]:
    """Started by celery beat (schedule editable in the admin: Periodic tasks)."""
    from scoring.services.batch import nightly_runs_start

    return [run.pk for run in nightly_runs_start()]


@shared_task(name="scoring.tasks.audit_seal", time_limit=120, soft_time_limit=100, ignore_result=True)
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


@shared_task(name="scoring.tasks.webhook_deliver", bind=True, acks_late=True, time_limit=120, soft_time_limit=100)
def webhook_deliver(self, delivery_id: int, first_failed_at: float | None = None) -> str:
    """One attempt at a decision event's delivery (``default`` queue); a receiver that
    does not answer 2xx is retried with backoff within WEBHOOK_RETRY_BUDGET_SECONDS of the
    first failure (kept on the row, so a resent message counts the same outage), then failed."""
    from django.conf import settings

    from scoring.services.webhooks import (
        WebhookAttemptFailed,
        webhook_delivery_attempt,
        webhook_delivery_fail,
        webhook_delivery_retry_scheduled,
    )

    try:
        return webhook_delivery_attempt(delivery_id=delivery_id)
    except WebhookAttemptFailed as exc:
        try:
            return retry_within_budget(
                self, exc, first_failed_at=exc.first_failed_at,
                budget_seconds=settings.WEBHOOK_RETRY_BUDGET_SECONDS,
                max_delay_seconds=settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS,
                scheduled=lambda delay: webhook_delivery_retry_scheduled(delivery_id=delivery_id, delay=delay),
                delivery_id=delivery_id,
            )  # fmt: skip
        except WebhookAttemptFailed:
            webhook_delivery_fail(delivery_id=delivery_id, error=str(exc))
            return "failed: retry budget spent"
