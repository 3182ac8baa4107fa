"""Retry and cancel of trainings, tuning studies and imports through the API and the
``job`` command: one rule (scoring.services.jobs) behind both."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from scoring.models import AuditEvent, ImportJob, ModelVersion, TuningStudy
from scoring.services.access import portfolio_access_grant
from tests.factories import UserFactory
from tests.scoring.api.conftest import client_for


@pytest.fixture
def developer(api_world):
    user = UserFactory(username="developer")
    portfolio_access_grant(portfolio=api_world["mine"], grantee=user, role="model developer")
    return user


def failed_training(portfolio) -> ModelVersion:
    return ModelVersion.objects.create(
        portfolio=portfolio, version=9, kind="mlp", status="failed", schema=portfolio.schema, error="Worker gone"
    )


def test_a_failed_training_is_retried_by_a_developer_only(api_world, developer, django_capture_on_commit_callbacks):
    version = failed_training(api_world["mine"])
    url = f"/api/v1/models/{version.pk}/retry/"
    assert client_for(api_world["owner"]).post(url).status_code == 403  # sees it, may not train
    assert client_for(api_world["stranger"]).post(url).status_code == 404  # another portfolio's
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(developer).post(url)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "queued" and len(callbacks) == 1  # enqueued once committed
    again = client_for(developer).post(url)
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_state"
    assert AuditEvent.objects.filter(action="model.retry", object_ids=[version.pk]).count() == 1


def test_a_queued_training_and_a_study_are_cancelled(api_world, developer):
    version = failed_training(api_world["mine"])
    ModelVersion.objects.filter(pk=version.pk).update(status="queued")
    response = client_for(developer).post(f"/api/v1/models/{version.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "failed"
    assert ModelVersion.objects.get(pk=version.pk).error == "Cancelled by developer."
    study = TuningStudy.objects.create(portfolio=api_world["mine"], kind="mlp", study_name="s", n_trials=3)
    response = client_for(developer).post(f"/api/v1/tuning-studies/{study.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "failed"


def test_the_job_command_retries_and_refuses_in_words(api_world, capsys, tmp_path):
    version = failed_training(api_world["mine"])
    call_command("job", "retry", "training", str(version.pk))
    assert f"Training {version.pk}: queued" in capsys.readouterr().out
    job = ImportJob.objects.create(
        portfolio=api_world["mine"], kind="applicants", schema=api_world["mine"].schema, file_name="a.csv",
        status="failed", source=str(tmp_path / "gone.csv"),
    )  # fmt: skip
    with pytest.raises(CommandError, match="file of this import is gone"):
        call_command("job", "retry", "import", str(job.pk))
    with pytest.raises(CommandError, match="No import job"):
        call_command("job", "cancel", "import", "999999")


def test_the_portal_button_retries_a_failed_training_and_hides_other_portfolios(api_world, developer, client):
    version = failed_training(api_world["mine"])
    url = f"/jobs/training/{version.pk}/retry/"
    client.force_login(developer)
    assert "Retry training" in client.get(f"/models/{version.pk}/").content.decode()
    response = client.post(url)
    assert response.status_code == 302 and ModelVersion.objects.get(pk=version.pk).status == "queued"
    client.force_login(api_world["stranger"])
    assert client.post(url).status_code == 404
