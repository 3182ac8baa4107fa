"""The supervisor and the recovery rules, in process: finishing a run is part of its
last chunk and cannot be skipped; stale claims and lost messages are re-queued; a
stalled owner's late commit is refused; trainings and imports whose lease expired
are marked failed and retried; retries are sized by time. The same on real worker
processes and servers: tests/scoring/test_faults.py."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.utils import timezone

from riskapp.celery import app as celery_app
from scoring.metrics import metrics_text
from scoring.models import Applicant, AuditEvent, BatchRun, ImportJob, ModelVersion, Score, ScoreChunk
from scoring.services import batch
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import _claim, _score_claimed, batch_run_create, nightly_runs_start, score_chunk_run
from scoring.services.errors import ForbiddenError
from scoring.services.ingestion import import_job_create, import_job_run
from scoring.services.jobs import JobStateError, import_job_retry, model_version_cancel, model_version_retry
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.supervisor import supervise
from scoring.services.synthetic import synthetic_files_write
from scoring.services.training import model_version_create, model_version_train
from scoring.tasks import retry_within_budget
from tests.factories import UserFactory, synthetic_portfolio

FAST = {"max_epochs": 3, "patience": 2, "batch_size": 128}
N = 600


@pytest.fixture
def eager():
    """Messages the supervisor sends run at once, in this process (as a worker would)."""
    before = {key: celery_app.conf[key] for key in ("task_always_eager", "task_eager_propagates")}
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    celery_app.conf.update(before)


@pytest.fixture
def people(db):
    portfolio = synthetic_portfolio(n=N, seed=4)
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="model developer")
    return portfolio, developer, validator


def champion_of(portfolio, developer, validator, seed=1) -> ModelVersion:
    version = model_version_create(portfolio=portfolio, kind="mlp", seed=seed, hyperparameters=FAST,
                                   requested_by=developer)  # fmt: skip
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=validator)
    return model_version_promote(version=version, user=validator)


@pytest.fixture
def champion(people):
    return champion_of(*people)


def age(queryset, field: str, seconds: float) -> None:
    queryset.update(**{field: timezone.now() - timedelta(seconds=seconds)})


def assert_scored_once(run: BatchRun) -> None:
    run.refresh_from_db()
    scores = Score.objects.filter(run=run, is_shadow=False)
    assert scores.count() == run.rows_total
    assert scores.values("applicant_id").distinct().count() == run.rows_total
    assert run.rows_done == run.rows_total and run.chunks_done == run.chunks_total


def test_a_failed_final_step_rolls_its_chunk_back_and_the_supervisor_finishes_the_run(
    champion, monkeypatch, settings, eager
):
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=200)
    chunks = list(run.chunks.order_by("index").values_list("id", flat=True))
    for chunk_id in chunks[:-1]:
        assert score_chunk_run(chunk_id=chunk_id) == "done"
    finish = batch.batch_run_finish

    def broken(**kwargs):
        raise RuntimeError("injected failure of the final UPDATE")

    monkeypatch.setattr(batch, "batch_run_finish", broken)
    with pytest.raises(RuntimeError, match="injected"):
        score_chunk_run(chunk_id=chunks[-1])
    run.refresh_from_db()
    # Nothing of the last chunk is half done: its rows, its progress and the finish rolled back together.
    assert run.status == BatchRun.STATUS_RUNNING and run.chunks_done == len(chunks) - 1
    assert Score.objects.filter(run=run).count() == N - 200
    monkeypatch.setattr(batch, "batch_run_finish", finish)
    age(ScoreChunk.objects.filter(pk=chunks[-1]), "claimed_at", settings.SCORE_CHUNK_STALE_SECONDS + 1)
    assert supervise()["chunk_stale"] == 1  # re-queued, and (eager) run at once
    run.refresh_from_db()
    assert run.status == BatchRun.STATUS_DONE
    assert_scored_once(run)
    assert AuditEvent.objects.filter(action="supervisor.chunk_requeue", object_ids=[run.pk]).exists()
    assert 'riskapp_supervisor_repair_events_total{action="supervisor.chunk_requeue"} 1.0' in metrics_text().decode()


def test_a_complete_run_left_running_is_finished_and_the_nightly_rescoring_goes_on(champion):
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=300)
    for chunk_id in run.chunks.values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    # As runs were left before finishing was part of the last chunk: 100 % done, still running.
    BatchRun.objects.filter(pk=run.pk).update(status=BatchRun.STATUS_RUNNING, finished_at=None)
    started = nightly_runs_start()
    run.refresh_from_db()
    assert run.status == BatchRun.STATUS_DONE
    assert [r.portfolio_id for r in started] == [champion.portfolio_id]
    # And the supervisor does the same without the nightly.
    BatchRun.objects.filter(pk=run.pk).update(status=BatchRun.STATUS_RUNNING)
    assert supervise()["run_finished"] == 1
    assert supervise()["run_finished"] == 0  # idempotent


def test_a_stalled_owners_late_commit_is_refused_after_a_takeover(champion, settings):
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=N)
    (chunk_id,) = run.chunks.values_list("id", flat=True)
    stalled = _claim(chunk_id)
    age(ScoreChunk.objects.filter(pk=chunk_id), "claimed_at", settings.SCORE_CHUNK_STALE_SECONDS + 1)
    taker = _claim(chunk_id)
    assert taker is not None and taker.attempts == stalled.attempts + 1
    assert _score_claimed(taker) == "done"
    assert _score_claimed(stalled) == "taken over"  # wakes up, finds its claim gone, writes nothing
    assert_scored_once(run)


def test_pending_chunks_whose_messages_were_lost_are_sent_again(champion, eager):
    # batch_run_create enqueues nothing: as if the broker lost every message.
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=150)
    repaired = supervise()
    assert repaired["chunk_lost"] == 4
    assert_scored_once(run)
    run.refresh_from_db()
    assert run.status == BatchRun.STATUS_DONE
    assert AuditEvent.objects.filter(action="supervisor.chunk_resend").count() == 1


def test_a_training_whose_worker_is_gone_is_failed_with_the_reason_and_retried(
    people, settings, eager, django_capture_on_commit_callbacks
):
    portfolio, developer, _ = people
    version = model_version_create(portfolio=portfolio, kind="mlp", hyperparameters=FAST, requested_by=developer)
    # Claimed by a worker that was then killed: its lease stopped at the claim.
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.STATUS_TRAINING, worker="gone-host:4242", started_at=timezone.now()
    )
    age(ModelVersion.objects.filter(pk=version.pk), "heartbeat_at", settings.JOB_STALE_SECONDS + 1)
    assert supervise()["training_failed"] == 1
    version.refresh_from_db()
    assert version.status == ModelVersion.STATUS_FAILED and "Worker gone" in version.error
    assert "gone-host:4242" in version.error and "retry" in version.error
    assert AuditEvent.objects.filter(action="supervisor.training_fail", object_ids=[version.pk]).exists()
    with pytest.raises(ForbiddenError):
        model_version_retry(version=version, user=UserFactory(username="stranger"))
    with django_capture_on_commit_callbacks(execute=True):
        model_version_retry(version=version, user=developer)  # (eager) trained at once
    version.refresh_from_db()
    assert version.status == ModelVersion.STATUS_TRAINED and version.artifact_sha256
    with pytest.raises(JobStateError):
        model_version_retry(version=version, user=developer)


def test_a_cancelled_training_stops_and_its_late_result_is_dropped(people):
    portfolio, developer, _ = people
    version = model_version_create(portfolio=portfolio, kind="mlp", hyperparameters=FAST, requested_by=developer)
    cancelled_at_epoch = []

    def cancel_at_first_epoch(epoch, loss, auc):
        if not cancelled_at_epoch:
            cancelled_at_epoch.append(epoch)
            model_version_cancel(version=version, user=developer)

    assert model_version_train(model_version_id=version.pk, on_epoch=cancel_at_first_epoch) is None
    version.refresh_from_db()
    assert version.status == ModelVersion.STATUS_FAILED and version.error == "Cancelled by dev."
    assert version.progress["phase"] == "cancelled" and not version.artifact_sha256


def test_an_import_whose_process_is_gone_is_failed_and_retried(
    people, tmp_path, settings, eager, django_capture_on_commit_callbacks
):
    portfolio = people[0]
    files = synthetic_files_write(directory=tmp_path, count=50, seed=2)
    job = import_job_create(portfolio=portfolio, kind="applicants", path=files.applicants)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.STATUS_RUNNING, started_at=timezone.now())
    age(ImportJob.objects.filter(pk=job.pk), "heartbeat_at", settings.JOB_STALE_SECONDS + 1)
    assert supervise()["import_failed"] == 1
    job.refresh_from_db()
    assert job.status == ImportJob.STATUS_FAILED and "Worker gone" in job.message
    with django_capture_on_commit_callbacks(execute=True):
        import_job_retry(job=job, user=None)  # (eager) imported at once
    job.refresh_from_db()
    assert job.status == ImportJob.STATUS_SUCCEEDED, job.message
    assert job.rows_valid == 50 and job.rows_created + job.rows_updated + job.rows_unchanged == 50


def test_an_import_marked_failed_while_its_process_stalled_cannot_commit_when_it_resumes(people, tmp_path, settings):
    portfolio = people[0]
    settings.JOB_STALE_SECONDS = 3600  # its lease renewer stays quiet: the test ages the lease itself
    files = synthetic_files_write(directory=tmp_path, count=50, seed=3, id_prefix="LATE")
    job = import_job_create(portfolio=portfolio, kind="applicants", path=files.applicants)
    failed_meanwhile = []

    def stalled(done: int, total: int, phase: str) -> None:
        # The process stalls while validating: its lease ages and the supervisor marks it failed.
        if phase == "validate" and not failed_meanwhile:
            age(ImportJob.objects.filter(pk=job.pk), "heartbeat_at", settings.JOB_STALE_SECONDS + 1)
            failed_meanwhile.append(supervise()["import_failed"])

    done = import_job_run(job_id=job.pk, path=files.applicants, progress=stalled)

    assert failed_meanwhile == [1]
    assert done.status == ImportJob.STATUS_FAILED and "Worker gone" in done.message
    job.refresh_from_db()
    assert job.status == ImportJob.STATUS_FAILED and "Worker gone" in job.message
    assert not Applicant.objects.filter(external_id__startswith="LATE").exists()  # the late write was refused


def test_a_run_is_pinned_to_its_version_and_says_when_it_retired_and_the_promotion_names_it(champion, people):
    portfolio, developer, validator = people
    run = batch_run_create(portfolio=portfolio, chunk_size=300)
    first, second = run.chunks.order_by("index").values_list("id", flat=True)
    score_chunk_run(chunk_id=first)
    newer = champion_of(portfolio, developer, validator, seed=7)
    score_chunk_run(chunk_id=second)
    run.refresh_from_db()
    assert run.status == BatchRun.STATUS_DONE and run.model_retired_at is not None
    assert set(Score.objects.filter(run=run).values_list("model_version_id", flat=True)) == {champion.pk}
    event = AuditEvent.objects.filter(action="model.promote", object_ids=[newer.pk]).get()
    assert event.details["replaced"] == champion.pk
    assert batch.batch_run_progress(run)["model_retired_at"] is not None


def test_transient_errors_are_retried_for_a_time_budget_not_a_count(settings):
    settings.TASK_RETRY_BUDGET_SECONDS, settings.TASK_RETRY_MAX_DELAY_SECONDS = 600, 60

    class Task:  # the part of a bound Celery task that retry_within_budget uses
        request = SimpleNamespace(retries=30)

        def retry(self, **options):
            return options

    error = OperationalError("connection refused")
    # Failing for 9 minutes, the 31st try: retried still (8 retries by count were spent in about 4 minutes).
    retry = retry_within_budget(Task(), error, first_failed_at=time.time() - 540, chunk_id=7)
    assert retry["max_retries"] is None and 30 <= retry["countdown"] <= 60
    assert retry["kwargs"]["chunk_id"] == 7 and retry["kwargs"]["first_failed_at"] < time.time() - 539
    # Past the budget: the error is raised (the supervisor re-sends the chunk later).
    with pytest.raises(OperationalError):
        retry_within_budget(Task(), error, first_failed_at=time.time() - 601, chunk_id=7)


def test_a_study_waiting_for_a_worker_is_left_alone_and_one_whose_trial_died_is_failed(
    transactional_db, people, settings
):
    # Optuna writes through its own connection: no test transaction may hold SQLite's lock.
    import optuna

    from scoring.models import TuningStudy
    from scoring.services.tuning import _storage, tuning_study_create

    portfolio, developer, _ = people
    study = tuning_study_create(portfolio=portfolio, kind="mlp", n_trials=3, requested_by=developer)
    TuningStudy.objects.filter(pk=study.pk).update(status="running")
    age(TuningStudy.objects.filter(pk=study.pk), "heartbeat_at", settings.JOB_STALE_SECONDS + 1)
    # Its trials queue behind other work on the train queue: no trial runs, nothing is gone.
    assert supervise()["tuning_failed"] == 0
    # A worker took a trial and was killed: Optuna keeps the trial RUNNING, the lease aged.
    optuna.load_study(study_name=study.study_name, storage=_storage()).ask()
    assert supervise()["tuning_failed"] == 1
    study.refresh_from_db()
    assert study.status == "failed" and "Worker gone" in study.error


def test_the_run_page_says_its_model_retired_mid_run(champion, client):
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=N)
    BatchRun.objects.filter(pk=run.pk).update(model_retired_at=timezone.now())
    client.force_login(UserFactory(username="admin", is_superuser=True, is_staff=True))
    page = client.get(f"/runs/{run.pk}/")
    assert page.status_code == 200 and "retired mid-run" in page.content.decode()
