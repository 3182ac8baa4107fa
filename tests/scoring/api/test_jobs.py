"""Endpoints that start work on the workers: training, tuning and imports. The
queued work is then run in-process, as a worker would run it."""

from __future__ import annotations

import csv
import io

import pytest

from scoring.models import ImportJob, ModelVersion, TuningStudy
from scoring.services.access import portfolio_access_grant
from scoring.services.ingestion import import_job_run
from scoring.services.tuning import tuning_trial_run
from tests.factories import UserFactory, synthetic_portfolio
from tests.scoring.api.conftest import client_for

COLUMNS = ["applicant_id", "income", "loan_amount", "duration_months", "debt_to_income", "employment_years",
           "num_credit_lines", "home_ownership", "purpose", "region", "sex", "age_band", "full_name", "national_id",
           "email", "phone", "address", "date_of_birth", "defaulted"]  # fmt: skip
PERSON = ["F", "26-35", "Ann Example", "X123", "ann@example.com", "+44 20 7946 0000", "1 High St", "1990-01-01", "no"]


def test_training_is_queued_for_a_developer_and_refused_without_the_grant(
    api_world, django_capture_on_commit_callbacks
):
    developer = UserFactory(username="developer")
    portfolio_access_grant(portfolio=api_world["mine"], grantee=developer, role="model developer")
    body = {"portfolio": api_world["mine"].pk, "kind": "mlp", "hyperparameters": {"max_epochs": 3}}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(developer).post("/api/v1/models/train/", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued" and len(callbacks) == 1  # enqueued once committed
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert version.trained_by == developer and version.hyperparameters == {"max_epochs": 3}
    bad = {**body, "hyperparameters": {"depth_of_ocean": 3}}
    error = client_for(developer).post("/api/v1/models/train/", bad, format="json").json()["error"]
    assert error["code"] == "invalid" and "hyperparameters" in error["details"]
    # The owner (a senior analyst) sees the portfolio but may not train: 403; the stranger sees nothing: 404.
    assert client_for(api_world["owner"]).post("/api/v1/models/train/", body, format="json").status_code == 403
    assert client_for(api_world["stranger"]).post("/api/v1/models/train/", body, format="json").status_code == 404


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # Optuna writes through its own connection
def test_tuning_through_the_api_trains_the_best_trial_as_a_model_version():
    portfolio = synthetic_portfolio(n=400, seed=5)
    developer = UserFactory(username="developer")
    analyst = UserFactory(username="analyst")
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="model developer")
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    body = {"portfolio": portfolio.pk, "kind": "mlp", "n_trials": 1, "seed": 3}
    assert client_for(analyst).post("/api/v1/models/tune/", body, format="json").status_code == 403
    error = client_for(developer).post("/api/v1/models/tune/", {**body, "n_trials": 0}, format="json").json()["error"]
    assert error["code"] == "invalid" and list(error["details"]) == ["n_trials"]
    response = client_for(developer).post("/api/v1/models/tune/", body, format="json")
    assert response.status_code == 202, response.content
    study = TuningStudy.objects.get(pk=response.json()["id"])
    assert study.status == "queued" and study.requested_by == developer
    tuning_trial_run(study_id=study.pk)  # the one trial's task, as a train worker runs it
    done = client_for(developer).get(f"/api/v1/tuning-studies/{study.pk}/").json()
    assert done["status"] == "done" and done["trials_done"] == 1 and done["best_value"] > 0.5
    best = ModelVersion.objects.get(pk=done["best_model_version"])
    assert best.status == "trained" and best.tuning_study_id == study.pk
    listed = client_for(developer).get("/api/v1/tuning-studies/?status=done").json()["results"]
    assert [row["id"] for row in listed] == [study.pk]


def test_an_import_upload_reports_every_bad_row_and_downloads_the_report(
    api_world, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)  # line 1; the report numbers file lines
    writer.writerow(["NEW001", "42000", "9000", "36", "0.31", "4.5", "3", "rent", "car", "north", *PERSON])
    writer.writerow(["NEW002", "41000", "8000", "24", "lots", "2", "1", "own", "car", "south", *PERSON])
    writer.writerow(["NEW003", "39000", "7000", "12", "0.2", "1", "2", "own", "=HYPERLINK(1)", "east", *PERSON])
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = "new-applicants.csv"
    owner = client_for(api_world["owner"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = owner.post(
            "/api/v1/imports/",
            {"portfolio": api_world["mine"].pk, "kind": "applicants", "file": upload},
            format="multipart",
        )
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending" and len(callbacks) == 1
    (path,) = tmp_path.glob("imports/*/new-applicants.csv")
    import_job_run(job_id=response.json()["id"], path=path)  # as the worker's import task does
    job = owner.get(f"/api/v1/imports/{response.json()['id']}/").json()
    assert job["status"] == "rejected" and job["rows_invalid"] == 2 and job["rows_created"] == 0
    assert {(e["row"], e["column"]) for e in job["errors"]} == {(3, "debt_to_income"), (4, "purpose")}
    listed = owner.get("/api/v1/imports/?status=rejected").json()["results"]
    assert [row["id"] for row in listed] == [job["id"]] and "errors" not in listed[0]
    report = owner.get(f"/api/v1/imports/{job['id']}/report/")
    assert report.status_code == 200 and report["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(report.streaming_content).decode())))
    assert {(r["row"], r["column"]) for r in rows} == {("3", "debt_to_income"), ("4", "purpose")}
    assert next(r["value"] for r in rows if r["column"] == "purpose") == "'=HYPERLINK(1)"  # escaped
    assert client_for(api_world["stranger"]).get(f"/api/v1/imports/{job['id']}/report/").status_code == 404
    assert ImportJob.objects.get(pk=job["id"]).created_by == api_world["owner"]
