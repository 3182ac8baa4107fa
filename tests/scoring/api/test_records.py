"""The record API: batches of applications and outcomes as JSON, validated like files."""

import pytest

from models.synthetic import generate_all
from scoring.models import Applicant, AuditEvent, ImportJob, Outcome
from scoring.services.pii import pii_read

from .conftest import client_for

pytestmark = pytest.mark.django_db


def _records(n: int, seed: int = 4) -> list[dict]:
    frame = generate_all(n, seed=seed).applicants
    records = frame.to_dict("records")
    for record in records:
        record["defaulted"] = None  # applications: no outcome yet
        record["employment_years"] = (
            None if record["employment_years"] != record["employment_years"] else record["employment_years"]
        )
    return records


def test_applications_are_validated_stored_idempotently_and_audited(api_world):
    owner = client_for(api_world["owner"])
    portfolio = api_world["mine"]
    records = _records(5)
    body = {"portfolio": portfolio.pk, "records": records}

    first = owner.post("/api/v1/imports/applications/", body, format="json")

    assert first.status_code == 201, first.content
    assert first.json()["rows_created"] == 5 and first.json()["status"] == "succeeded"
    stored = Applicant.objects.get(portfolio=portfolio, external_id=records[2]["applicant_id"])
    assert stored.features["income"] == pytest.approx(records[2]["income"])
    assert pii_read(stored)["full_name"] == records[2]["full_name"]
    assert not Outcome.objects.filter(applicant=stored).exists()
    again = owner.post("/api/v1/imports/applications/", body, format="json").json()
    assert again["rows_unchanged"] == 5 and again["rows_created"] == 0
    assert AuditEvent.objects.filter(action="import.create", portfolio_id=portfolio.pk).count() == 2

    outcomes = [{"applicant_id": r["applicant_id"], "defaulted": i == 0, "observed_on": "2026-10-01"}
                for i, r in enumerate(records)]  # fmt: skip
    sent = owner.post("/api/v1/imports/outcomes/", {"portfolio": portfolio.pk, "records": outcomes}, format="json")
    assert sent.status_code == 201, sent.content
    assert Outcome.objects.filter(applicant__portfolio=portfolio).count() == 5


def test_a_bad_record_rejects_the_batch_with_the_files_report_format(api_world, counts):
    owner = client_for(api_world["owner"])
    records = _records(3)
    records[1]["income"] = "lots"
    records[2]["colour"] = "blue"
    before = counts()
    response = owner.post(
        "/api/v1/imports/applications/", {"portfolio": api_world["mine"].pk, "records": records}, format="json"
    )
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert {(e["row"], e["column"]) for e in details["records"]} == {("3", "income"), ("1", "colour")}
    assert (
        ImportJob.objects.get(
            pk=int(details["import_job"][0]) if isinstance(details["import_job"], list) else int(details["import_job"])
        ).status
        == ImportJob.STATUS_REJECTED
    )
    assert counts() == before
    theirs = {"portfolio": api_world["theirs"].pk, "records": _records(1)}
    assert owner.post("/api/v1/imports/applications/", theirs, format="json").status_code == 404


def test_new_data_scored_with_an_external_id_is_stored_as_that_applicant(api_world, monkeypatch):
    from scoring.services import scoring

    portfolio = api_world["mine"]
    record = _records(1)[0]
    features = {k: record[k] for k in ("income", "loan_amount", "duration_months", "debt_to_income",
                                        "employment_years", "num_credit_lines", "home_ownership", "purpose", "region")}  # fmt: skip
    clean, problems = scoring.applicant_features_validate(portfolio=portfolio, features=features)
    assert problems == []
    pk = scoring.applicant_from_score_store(
        portfolio=portfolio, features={**features, "applicant_id": "NEW-1"}, clean=clean
    )
    assert Applicant.objects.get(pk=pk).external_id == "NEW-1"
    assert scoring.applicant_from_score_store(portfolio=portfolio, features=features, clean=clean) is None
