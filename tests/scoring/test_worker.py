"""End to end through a real Celery worker process (not eager mode), on whatever
database and broker this run uses (PostgreSQL + Redis in CI, SQLite + the
filesystem broker embedded)."""

import shutil

import pytest
from django.conf import settings

from scoring.models import Applicant, ImportJob, ModelVersion, Portfolio
from scoring.services.ingestion import import_job_create
from scoring.services.training import model_training_start
from scoring.tasks import import_file
from tests.conftest import wait_for
from tests.factories import DEMO, demo_schema, synthetic_portfolio

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_worker_process_imports_the_demo_file(celery_worker, tmp_path):
    schema = demo_schema("german_credit")
    portfolio = Portfolio.objects.create(name="German credit", schema=schema)
    upload = tmp_path / "german_credit.csv"
    shutil.copy(DEMO / "german_credit.csv", upload)
    job = import_job_create(portfolio=portfolio, kind="applicants", path=upload)

    import_file.delay(job.pk, str(upload))

    def finished():
        job.refresh_from_db()
        return job.status not in (ImportJob.STATUS_PENDING, ImportJob.STATUS_RUNNING)

    wait_for(finished, timeout=120, message=f"the import job; worker log:\n{celery_worker.log()}")
    assert job.status == ImportJob.STATUS_SUCCEEDED, job.message
    assert Applicant.objects.filter(portfolio=portfolio).count() == 1000
    assert "Task scoring.tasks.import_file[" in celery_worker.log()
    assert settings.CELERY_QUEUES_BY_ROLE["default"] in celery_worker.log()


def test_a_worker_trains_a_model_from_the_train_queue(celery_worker_factory):
    worker = celery_worker_factory(roles=("train",))
    portfolio = synthetic_portfolio(n=1500, seed=4)
    version = model_training_start(
        portfolio=portfolio, kind="mlp", hyperparameters={"max_epochs": 3, "batch_size": 128}
    )

    def done():
        version.refresh_from_db()
        return version.status not in (ModelVersion.STATUS_QUEUED, ModelVersion.STATUS_TRAINING)

    wait_for(done, timeout=180, message=f"training; worker log:\n{worker.log()}")
    assert version.status == ModelVersion.STATUS_TRAINED, version.error
    assert version.progress["epoch"] >= 1
