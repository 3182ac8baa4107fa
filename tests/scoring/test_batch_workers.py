"""Batch runs on real worker processes: kill -9 one in the middle of a run, start
another, and every applicant is scored exactly once."""

import signal

import pytest
from django.db import connection

from scoring.models import BatchRun, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_start
from scoring.services.demo import DEMO_DIR, portfolio_with_schema
from scoring.services.ingestion import import_file_run
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.synthetic import synthetic_files_write
from scoring.services.training import model_version_create, model_version_train
from tests.conftest import wait_for
from tests.factories import UserFactory

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def champion_portfolio(tmp_path, n: int):
    portfolio = portfolio_with_schema(name="Kill test", schema_file=DEMO_DIR / "synthetic.schema.json")
    files = synthetic_files_write(directory=tmp_path / "data", count=n, seed=5)
    job = import_file_run(portfolio=portfolio, kind="applicants", path=files.applicants)
    assert job.status == "succeeded", job.message
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    version = model_version_create(
        portfolio=portfolio, kind="mlp", requested_by=developer, hyperparameters={"max_epochs": 2, "batch_size": 1024}
    )
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator)
    return portfolio


def test_a_run_survives_kill_9_of_a_worker_and_scores_everyone_exactly_once(celery_worker_factory, tmp_path):
    # 100k applicants on PostgreSQL (the acceptance case); fewer on the embedded SQLite.
    n = 100_000 if connection.vendor == "postgresql" else 12_000
    portfolio = champion_portfolio(tmp_path, n)
    env = {"SCORE_CHUNK_STALE_SECONDS": "5"}
    doomed = celery_worker_factory(roles=("score",), env=env)
    celery_worker_factory(roles=("score",), env=env)
    run = batch_run_start(portfolio=portfolio, chunk_size=2000)

    def progressed():
        run.refresh_from_db()
        return run.rows_done >= n // 5

    wait_for(progressed, timeout=300, message=f"a fifth of the run; log:\n{doomed.log()[-3000:]}")
    doomed.kill(signal.SIGKILL)
    done_at_kill = run.rows_done
    celery_worker_factory(roles=("score",), env=env)  # the restarted worker

    def finished():
        run.refresh_from_db()
        return run.status == BatchRun.STATUS_DONE

    wait_for(finished, timeout=900, interval=1, message="the run to finish after the kill")
    assert done_at_kill < n
    scores = Score.objects.filter(run=run)
    assert scores.count() == n
    assert scores.values("applicant_id").distinct().count() == n
    assert run.rows_done == n and run.chunks_done == run.chunks_total
