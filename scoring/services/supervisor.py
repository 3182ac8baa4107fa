"""The supervisor: every job reaches a final state by itself.

One periodic pass (``supervise``), run by every worker's own timer and by beat
(riskapp/celery.py), finds and repairs what a killed process, a lost broker message
or a failed last step leaves behind:

- chunks claimed longer ago than ``SCORE_CHUNK_STALE_SECONDS``: back to pending and
  sent again (their worker is gone or stalled; its late commit is refused by the
  claim's fencing token, see ``scoring.services.batch``);
- pending chunks whose last message is older than the stale limit (a broker
  restarted empty, a task dropped): sent again;
- runs with every chunk done but not finished: finished;
- trainings, tuning studies and imports whose lease (``heartbeat_at``, renewed by
  their process every ``JOB_STALE_SECONDS / 4``) is older than ``JOB_STALE_SECONDS``:
  marked failed with the reason, which the retry actions then offer to run again;
- pending webhook deliveries overdue by more than ``WEBHOOK_LOST_AFTER_SECONDS``
  (their message was lost): sent again;
- files in the artifacts storage that no model version names, older than
  ``ARTIFACT_ORPHAN_GRACE_SECONDS``: deleted.

Every repair is a conditional update, so two supervisors running at once (one per
worker) repair a thing once; each is logged, counted in /metrics
(``riskapp_supervisor_repairs_total``) and audited (``supervisor.*``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F, Model, Q
from django.utils import timezone

from scoring.metrics import supervisor_repaired
from scoring.models import BatchRun, ImportJob, ModelVersion, ScoreChunk, TuningStudy

logger = logging.getLogger(__name__)


def worker_identity() -> str:
    """Who holds a lease: host and process id (shown on the row, for operators)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _stale(seconds: int) -> datetime:
    return timezone.now() - timedelta(seconds=seconds)


def _audit(action: str, *, portfolio_id: int | None, object_type: str, object_ids: list[int], **details) -> None:
    from scoring.audit import audit_record

    audit_record(
        action=action, actor=None, portfolio_id=portfolio_id, object_type=object_type, object_ids=object_ids,
        details=details,
    )  # fmt: skip


def _repaired(kind: str, count: int, message: str, *args) -> None:
    logger.warning("supervisor: " + message, *args)
    supervisor_repaired(kind=kind, count=count)


# --- Leases ---------------------------------------------------------------------


class _LeaseRenewer(threading.Thread):
    """Renews ``heartbeat_at`` of one row every ``interval`` seconds while the job runs.

    A thread, not the job's own progress callback: a training spends minutes loading
    data before its first epoch, and an import validates for a long while between
    writes. It has its own database connection and gives up quietly on errors (a
    database blip): the lease then ages, which is what the supervisor should see."""

    def __init__(self, model: type[Model], pk: int, token: str | None, interval: float):
        super().__init__(name=f"lease-{model._meta.model_name}-{pk}", daemon=True)
        self.model, self.pk, self.token, self.interval = model, pk, token, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    rows = self.model._default_manager.filter(pk=self.pk)
                    if self.token is not None:  # a lease of one holder; None: shared (a study's trials)
                        rows = rows.filter(worker=self.token)
                    rows.update(heartbeat_at=timezone.now())
                except Exception:  # any failure just leaves the lease to age
                    logger.info("lease of %s %s not renewed", self.model._meta.model_name, self.pk, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()


@contextmanager
def lease_held(model: type[Model], pk: int, token: str | None) -> Iterator[None]:
    """Renew the lease of a claimed row (claimed with ``worker=token``) while the block runs."""
    interval = max(settings.JOB_STALE_SECONDS / 4, 0.5)
    renewer = _LeaseRenewer(model, pk, token, interval)
    # On SQLite too (the embedded set-up supervises its worker as well): a renewal that
    # waits behind the job's own long write transaction only renews late, and the
    # supervisor's update waits behind the same lock, then finds the job finished.
    renewer.start()
    try:
        yield
    finally:
        renewer.stopped.set()
        if renewer.is_alive():
            renewer.join(timeout=5)


def lease_claim_fields(token: str) -> dict:
    return {"worker": token, "heartbeat_at": timezone.now()}


# --- Repairs --------------------------------------------------------------------


def _chunks_resend(chunks, *, reset=None, kind: str, action: str, message: str, reason: str) -> int:
    """Send the chunks of ``chunks`` again, run by run, each repair logged, counted and
    audited. ``reset(id)`` first moves a chunk back to pending by a conditional update
    and says whether it did (a chunk claimed again or finished meanwhile is left alone)."""
    from scoring.services.batch import chunks_enqueue

    repaired = 0
    for run_id in chunks.values_list("run_id", flat=True).distinct():
        ids = list(chunks.filter(run_id=run_id).values_list("id", flat=True))
        if reset is not None:
            ids = [i for i in ids if reset(i)]
        if not ids:
            continue
        chunks_enqueue(ids)
        run = BatchRun.objects.get(pk=run_id)
        _repaired(kind, len(ids), f"run %s: %s {message}", run_id, len(ids))
        _audit(action, portfolio_id=run.portfolio_id, object_type="batchrun", object_ids=[run_id], chunks=ids,
               reason=reason)  # fmt: skip
        repaired += len(ids)
    return repaired


def chunks_stale_requeue() -> int:
    """Claims older than the stale limit go back to pending and are sent again."""
    from scoring.services.batch import stale_before

    stale = ScoreChunk.objects.filter(
        status="running",
        claimed_at__lt=stale_before(),
        run__status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING],
    )
    return _chunks_resend(
        stale,
        reset=lambda i: bool(
            ScoreChunk.objects.filter(pk=i, status="running", claimed_at__lt=stale_before()).update(status="pending")
        ),
        kind="chunk_stale", action="supervisor.chunk_requeue", message="stale chunk claims re-queued",
        reason="claim older than the stale limit",
    )  # fmt: skip


def chunks_lost_requeue() -> int:
    """Pending chunks whose last message is older than the stale limit are sent again.

    A queued message waits at most as long as the queue ahead of it; one older than
    the stale limit is taken as lost. Sending it again is harmless if it was not:
    a chunk is claimed once and its rows are written once."""
    from scoring.services.batch import stale_before

    lost = ScoreChunk.objects.filter(
        Q(enqueued_at__lt=stale_before()) | Q(enqueued_at__isnull=True),
        status="pending",
        run__status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING],
    )
    return _chunks_resend(
        lost, kind="chunk_lost", action="supervisor.chunk_resend", message="pending chunks without a message sent again",
        reason="pending chunk's message older than the stale limit",
    )  # fmt: skip


def runs_complete_finish() -> int:
    """Runs whose chunks are all done but which are not finished (from before finishing
    was part of the last chunk's transaction, or finished by hand in the database)."""
    from scoring.services.batch import batch_run_finish

    repaired = 0
    complete = BatchRun.objects.filter(
        status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING], chunks_done__gte=F("chunks_total")
    )
    for run in complete:
        if batch_run_finish(run_id=run.pk):
            _repaired("run_finished", 1, "run %s: every chunk done, finished", run.pk)
            _audit("supervisor.run_finish", portfolio_id=run.portfolio_id, object_type="batchrun",
                   object_ids=[run.pk], reason="every chunk done but the run not finished")  # fmt: skip
            repaired += 1
    return repaired


def _gone(queryset, *, started_field: str):
    """Rows whose lease is older than JOB_STALE_SECONDS (or that never had one and
    started longer ago than that: rows from before leases)."""
    before = _stale(settings.JOB_STALE_SECONDS)
    return queryset.filter(
        Q(heartbeat_at__lt=before) | Q(heartbeat_at__isnull=True, **{f"{started_field}__lt": before})
    )


def _gone_reason(row) -> str:
    seen = row.heartbeat_at.isoformat(timespec="seconds") if row.heartbeat_at else "never"
    holder = f" ({row.worker})" if row.worker else ""
    return (
        f"Worker gone: the process running it{holder} stopped renewing its lease (last seen {seen}; "
        f"limit {settings.JOB_STALE_SECONDS} s). Nothing partial was kept; retry to run it again."
    )


def trainings_gone_fail() -> int:
    repaired = 0
    for version in _gone(ModelVersion.objects.filter(status=ModelVersion.STATUS_TRAINING), started_field="started_at"):
        reason = _gone_reason(version)
        done = _gone(
            ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.STATUS_TRAINING), started_field="started_at"
        ).update(status=ModelVersion.STATUS_FAILED, error=reason, progress={**version.progress, "phase": "failed"})
        if done:
            _repaired("training_failed", 1, "model version %s: %s", version.pk, reason)
            _audit("supervisor.training_fail", portfolio_id=version.portfolio_id, object_type="modelversion",
                   object_ids=[version.pk], worker=version.worker, reason="lease expired")  # fmt: skip
            repaired += 1
    return repaired


def _trial_in_flight(study: TuningStudy) -> bool:
    """A trial Optuna records as running: a study whose lease aged with none is only
    waiting for a train worker (its trials queue behind other work), not gone."""
    import optuna

    from scoring.services.tuning import _storage

    try:
        trials = optuna.load_study(study_name=study.study_name, storage=_storage()).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
        )
    except KeyError:  # no such study in Optuna's tables
        return False
    return bool(trials)


def tunings_gone_fail() -> int:
    repaired = 0
    for study in _gone(TuningStudy.objects.filter(status="running"), started_field="created_at"):
        if not _trial_in_flight(study):
            continue
        reason = _gone_reason(study)
        done = _gone(TuningStudy.objects.filter(pk=study.pk, status="running"), started_field="created_at").update(
            status="failed", error=reason, finished_at=timezone.now()
        )
        if done:
            _repaired("tuning_failed", 1, "tuning study %s: %s", study.pk, reason)
            _audit("supervisor.tuning_fail", portfolio_id=study.portfolio_id, object_type="tuningstudy",
                   object_ids=[study.pk], worker=study.worker, reason="lease expired")  # fmt: skip
            repaired += 1
    return repaired


def imports_gone_fail() -> int:
    repaired = 0
    for job in _gone(ImportJob.objects.filter(status=ImportJob.STATUS_RUNNING), started_field="started_at"):
        reason = _gone_reason(job)
        done = _gone(
            ImportJob.objects.filter(pk=job.pk, status=ImportJob.STATUS_RUNNING), started_field="started_at"
        ).update(status=ImportJob.STATUS_FAILED, message=reason, finished_at=timezone.now())
        if done:
            _repaired("import_failed", 1, "import job %s: %s", job.pk, reason)
            _audit("supervisor.import_fail", portfolio_id=job.portfolio_id, object_type="importjob",
                   object_ids=[job.pk], worker=job.worker, reason="lease expired")  # fmt: skip
            repaired += 1
    return repaired


def webhooks_lost_resend() -> int:
    """Pending webhook deliveries due longer ago than WEBHOOK_LOST_AFTER_SECONDS lost their
    message (a broker restarted empty, the worker died before sending the retry, the
    commit's enqueue failed): sent again, portfolio by portfolio. Each is first made due
    now by a conditional update, so of two supervisors only one resends it; a message that
    was not lost after all finds the delivery claimed or done and does nothing."""
    from scoring.models import WebhookDelivery
    from scoring.services.webhooks import webhook_deliveries_enqueue

    before = _stale(settings.WEBHOOK_LOST_AFTER_SECONDS)
    lost = WebhookDelivery.objects.filter(status=WebhookDelivery.STATUS_PENDING, next_attempt_at__lt=before)
    repaired = 0
    for portfolio_id in lost.values_list("portfolio_id", flat=True).distinct():
        rows = lost.filter(portfolio_id=portfolio_id).values_list("id", "next_attempt_at")[:1000]
        now = timezone.now()
        ids = [
            i
            for i, due in rows
            if WebhookDelivery.objects.filter(pk=i, status=WebhookDelivery.STATUS_PENDING, next_attempt_at=due).update(
                next_attempt_at=now
            )
        ]
        if not ids:
            continue
        webhook_deliveries_enqueue(ids)
        _repaired("webhook_lost", len(ids), "portfolio %s: %s pending webhook deliveries sent again", portfolio_id,
                  len(ids))  # fmt: skip
        _audit("supervisor.webhook_resend", portfolio_id=portfolio_id, object_type="webhookdelivery", object_ids=ids,
               reason="pending delivery overdue by more than the lost limit")  # fmt: skip
        repaired += len(ids)
    return repaired


def artifacts_orphan_delete() -> int:
    """Files in the artifacts storage that no model version names, older than
    ``ARTIFACT_ORPHAN_GRACE_SECONDS``, are deleted: a training killed (or out of disk)
    between storing its files and recording its row leaves them, and nothing reads them.
    The grace period covers a training between those two steps; 0 turns the sweep off
    (an artifact store shared by several databases)."""
    from scoring.storage import ARTIFACTS, files_walk, storage

    grace = settings.ARTIFACT_ORPHAN_GRACE_SECONDS
    if not grace:
        return 0
    store = storage(ARTIFACTS)
    cutoff = _stale(grace)
    named = set(ModelVersion.objects.exclude(artifact_name="").values_list("artifact_name", flat=True))
    candidates = [
        name
        for name in files_walk(store)
        if name.removesuffix(".background.npz") not in named and store.get_modified_time(name) < cutoff
    ]
    deleted = []
    for name in candidates:
        if _artifact_named(name):  # recorded meanwhile (the listing took a while)
            continue
        store.delete(name)
        deleted.append(name)
    if deleted:
        _repaired("artifact_orphan", len(deleted), "%s orphan artifact files deleted: %s", len(deleted),
                  ", ".join(deleted[:20]))  # fmt: skip
        _audit("supervisor.artifact_orphan_delete", portfolio_id=None, object_type="artifact", object_ids=[],
               names=deleted[:200], count=len(deleted), reason=f"named by no model version, older than {grace} s")  # fmt: skip
    return len(deleted)


def _artifact_named(name: str) -> bool:
    """Some model version names ``name`` as its model file or its explainer background."""
    model_name = name.removesuffix(".background.npz")
    return ModelVersion.objects.filter(artifact_name=model_name).exists()


AUDIT_ACTIONS = [
    "supervisor.chunk_requeue", "supervisor.chunk_resend", "supervisor.run_finish",
    "supervisor.training_fail", "supervisor.tuning_fail", "supervisor.import_fail",
    "supervisor.webhook_resend",
    "supervisor.artifact_orphan_delete",
]  # fmt: skip

REPAIRS = {
    "chunk_stale": chunks_stale_requeue,
    "chunk_lost": chunks_lost_requeue,
    "run_finished": runs_complete_finish,
    "training_failed": trainings_gone_fail,
    "tuning_failed": tunings_gone_fail,
    "import_failed": imports_gone_fail,
    "webhook_lost": webhooks_lost_resend,
    "artifact_orphan": artifacts_orphan_delete,
}


def supervise() -> dict[str, int]:
    """One pass of every repair; how many things each repaired. A repair that fails
    (the database went away mid-pass) does not stop the others; the next pass retries."""
    repaired: dict[str, int] = {}
    for kind, repair in REPAIRS.items():
        try:
            repaired[kind] = repair()
        except Exception:
            logger.exception("supervisor: %s failed; the next pass tries again", kind)
            close_old_connections()
            repaired[kind] = 0
    return repaired


SCHEDULE_NAME = "Supervisor: stale chunks, lost messages, unfinished runs, dead trainings and imports"


def supervisor_schedule_ensure() -> bool:
    """Beat's every-minute schedule of the supervisor exists and is enabled (an operator
    may have removed or disabled it in the admin); True when it had to be created."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="*", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    task, created = PeriodicTask.objects.get_or_create(
        task="scoring.tasks.score_supervise", defaults={"name": SCHEDULE_NAME, "crontab": crontab}
    )
    if not created and not task.enabled:
        task.enabled = True
        task.save(update_fields=["enabled"])
    return created
