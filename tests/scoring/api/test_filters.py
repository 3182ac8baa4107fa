"""List filters (django-filter) and pagination, always inside the permission gate."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from scoring.api.pagination import MAX_PAGE_SIZE
from scoring.models import Applicant, BatchRun, ImportJob, ModelVersion, Score
from tests.scoring.api.conftest import FEATURES, client_for


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def external_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["external_id"] for row in response.json()["results"]]


def test_applicants_filter_by_latest_decision_and_points(api_world):
    owner = client_for(api_world["owner"])
    assert external_ids(owner.get("/api/v1/applicants/?decision=approve")) == ["MINE0006", "MINE0007"]
    assert external_ids(owner.get("/api/v1/applicants/?score_min=530&score_max=550")) == [
        "MINE0003",
        "MINE0004",
        "MINE0005",
    ]
    # The latest score decides: rescoring the first applicant as an approval moves it.
    first = api_world["applicants"][0]
    Score.objects.create(portfolio=api_world["mine"], applicant=first, model_version=api_world["version"], pd=0.01,
                         score=600, decision="approve", base_log_odds=-2.9, input_features=FEATURES,
                         input_hash="f" * 64)  # fmt: skip
    assert "MINE0000" in external_ids(owner.get("/api/v1/applicants/?decision=approve"))
    assert "MINE0000" not in external_ids(owner.get("/api/v1/applicants/?decision=decline"))
    # A challenger's shadow score is no decision.
    Score.objects.create(portfolio=api_world["mine"], applicant=first, model_version=api_world["version"], pd=0.9,
                         score=400, decision="decline", is_shadow=True, base_log_odds=-2.9,
                         input_features=FEATURES, input_hash="e" * 64)  # fmt: skip
    assert "MINE0000" in external_ids(owner.get("/api/v1/applicants/?decision=approve&score_min=590"))


def test_applicants_filter_by_external_id_and_creation_time(api_world):
    owner = client_for(api_world["owner"])
    assert external_ids(owner.get("/api/v1/applicants/?external_id=MINE0003")) == ["MINE0003"]
    assert len(external_ids(owner.get("/api/v1/applicants/?external_id_prefix=MINE000"))) == 8
    # Another portfolio's applicant is not found by its exact id either.
    assert external_ids(owner.get("/api/v1/applicants/?external_id=THEIRS0000")) == []
    third = Applicant.objects.get(external_id="MINE0002").created_at
    after = (third - timedelta(seconds=1)).isoformat()
    before = (third + timedelta(days=2) - timedelta(seconds=1)).isoformat()
    response = owner.get("/api/v1/applicants/", {"created_after": after, "created_before": before})
    assert external_ids(response) == ["MINE0002", "MINE0003"]


def test_a_portfolio_filter_never_reaches_past_the_gate(api_world):
    owner = client_for(api_world["owner"])
    theirs = api_world["theirs"].pk
    # Filtering by a portfolio you are not granted finds nothing, exactly like a missing one.
    assert owner.get(f"/api/v1/applicants/?portfolio={theirs}").json()["results"] == []
    assert owner.get("/api/v1/applicants/?portfolio=99999999").json()["results"] == []
    assert ids(owner.get(f"/api/v1/scores/?portfolio={theirs}")) == set()
    assert ids(owner.get(f"/api/v1/models/?portfolio={theirs}")) == set()
    mine = {a.pk for a in api_world["applicants"]}
    assert ids(owner.get("/api/v1/applicants/?page_size=100")) == mine


def test_scores_filter_by_decision_model_version_and_date(api_world):
    owner = client_for(api_world["owner"])
    mine = api_world["mine"]
    retired = ModelVersion.objects.create(portfolio=mine, version=2, kind="cnn", status="retired", schema=mine.schema)
    old = Score.objects.create(portfolio=mine, applicant=api_world["applicants"][0], model_version=retired, pd=0.2,
                               score=520, decision="decline", base_log_odds=-2.9, input_features=FEATURES,
                               input_hash="a" * 64)  # fmt: skip
    Score.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    assert ids(owner.get(f"/api/v1/scores/?model_version={retired.pk}")) == {old.pk}
    assert ids(owner.get("/api/v1/scores/?created_before=2025-12-01")) >= {old.pk}
    recent = ids(owner.get(f"/api/v1/scores/?created_after={(timezone.now() - timedelta(days=30)).date()}"))
    assert old.pk not in recent and len(recent) == 8
    declines = owner.get("/api/v1/scores/?decision=decline").json()["results"]
    assert {row["decision"] for row in declines} == {"decline"} and len(declines) == 4
    points = [row["score"] for row in owner.get("/api/v1/scores/?score_min=540&score_max=560").json()["results"]]
    assert sorted(points) == [540.0, 550.0, 560.0]


def test_models_runs_and_imports_filter_by_status_and_kind(api_world):
    owner = client_for(api_world["owner"])
    mine = api_world["mine"]
    trained = ModelVersion.objects.create(portfolio=mine, version=2, kind="cnn", status="trained", schema=mine.schema)
    assert ids(owner.get("/api/v1/models/?status=trained")) == {trained.pk}
    assert ids(owner.get("/api/v1/models/?kind=mlp")) == {api_world["version"].pk}
    run = BatchRun.objects.create(portfolio=mine, model_version=api_world["version"], status="done")
    BatchRun.objects.create(portfolio=api_world["theirs"], model_version=api_world["their_version"], status="done")
    assert ids(owner.get("/api/v1/batch-runs/?status=done")) == {run.pk}
    assert ids(owner.get("/api/v1/batch-runs/?status=running")) == set()
    job = ImportJob.objects.create(portfolio=mine, kind="history", schema=mine.schema, file_name="h.csv",
                                   status="rejected")  # fmt: skip
    ImportJob.objects.create(portfolio=mine, kind="applicants", schema=mine.schema, file_name="a.csv")
    assert ids(owner.get("/api/v1/imports/?status=rejected&kind=history")) == {job.pk}


def test_page_size_is_the_clients_choice_up_to_the_cap(api_world):
    mine = api_world["mine"]
    Applicant.objects.bulk_create(
        [
            Applicant(portfolio=mine, external_id=f"BULK{i:05d}", schema=mine.schema, features=FEATURES)
            for i in range(MAX_PAGE_SIZE + 10)
        ]
    )
    owner = client_for(api_world["owner"])
    body = owner.get("/api/v1/applicants/?page_size=3").json()
    assert len(body["results"]) == 3 and body["count"] == MAX_PAGE_SIZE + 18 and "page_size=3" in body["next"]
    assert len(owner.get("/api/v1/applicants/").json()["results"]) == 50
    assert len(owner.get("/api/v1/applicants/?page_size=100000").json()["results"]) == MAX_PAGE_SIZE
