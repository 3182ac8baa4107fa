import csv
import io
import math

import numpy as np
import pytest
from rest_framework.test import APIClient

from scoring.models import Applicant, BatchRun, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import score_chunk_run
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.training import model_version_create, model_version_train
from tests.factories import PortfolioFactory, UserFactory, synthetic_portfolio

FAST = {"max_epochs": 5, "patience": 3, "batch_size": 128}
ANALYST_PERMS = ("view_portfolio_data", "score_portfolio", "export_portfolio")


@pytest.fixture
def world(db):
    portfolio = synthetic_portfolio(n=1000, seed=21)
    other = PortfolioFactory(name="Other book")
    users = {name: UserFactory(username=name) for name in ("owner", "viewer", "stranger", "validator", "developer")}
    portfolio_access_grant(portfolio=portfolio, grantee=users["owner"], role="senior analyst", perms=ANALYST_PERMS)
    portfolio_access_grant(portfolio=portfolio, grantee=users["viewer"], role="analyst", perms=("view_portfolio_data",))
    portfolio_access_grant(portfolio=other, grantee=users["stranger"], role="senior analyst", perms=ANALYST_PERMS)
    portfolio_access_grant(portfolio=portfolio, grantee=users["validator"], role="model validator")
    version = model_version_create(
        portfolio=portfolio, kind="cnn", seed=2, hyperparameters=FAST, requested_by=users["developer"]
    )
    version = model_version_train(model_version_id=version.pk)
    return {"portfolio": portfolio, "other": other, "version": version, **users}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def champion(world):
    model_version_approve(version=world["version"], user=world["validator"])
    return model_version_promote(version=world["version"], user=world["validator"])


def test_scoring_needs_a_champion_then_returns_pd_score_decision_and_reasons(world):
    url = f"/api/v1/portfolios/{world['portfolio'].pk}/score/"
    owner = client_for(world["owner"])
    assert owner.post(url, {"external_id": "SYN00000001"}, format="json").status_code == 409
    champion(world)
    response = owner.post(url, {"external_id": "SYN00000001"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert 0 < body["pd"] < 1 and body["decision"] in {"approve", "refer", "decline"}
    assert body["model_version"] == world["version"].pk
    assert 1 <= len(body["reasons"]) <= 4
    assert {"feature", "code", "text", "value", "log_odds", "points"} <= set(body["reasons"][0])
    stored = Score.objects.get(pk=body["id"])
    log_odds = np.log(stored.pd / (1 - stored.pd))
    assert abs(sum(stored.contributions) + stored.base_log_odds - log_odds) < 1e-4


def test_a_new_applicant_is_validated_like_an_import_and_scored_without_being_saved(world):
    champion(world)
    url = f"/api/v1/portfolios/{world['portfolio'].pk}/score/"
    good = {"income": 42000, "loan_amount": 9000, "duration_months": 36, "debt_to_income": 0.31, "employment_years": 4.5,
            "num_credit_lines": 3, "home_ownership": "rent", "purpose": "car", "region": "north"}  # fmt: skip
    history = [{"balance": 9000 - 250 * i, "amount_paid": 260, "days_past_due": 0} for i in range(24)]
    owner = client_for(world["owner"])
    response = owner.post(url, {"applicant": good, "history": history}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["applicant"] is None
    bad = {**good, "debt_to_income": "lots", "purpose": "yacht", "income": -5}
    response = owner.post(url, {"applicant": bad}, format="json")
    assert response.status_code == 400
    columns = {problem["column"] for problem in response.json()["error"]["details"]["applicant"]}
    assert {"debt_to_income", "purpose", "income"} <= columns


def test_other_portfolios_answer_404_and_missing_grants_403(world):
    champion(world)
    url = f"/api/v1/portfolios/{world['portfolio'].pk}/score/"
    missing = client_for(world["stranger"]).post(
        "/api/v1/portfolios/999999/score/", {"external_id": "x"}, format="json"
    )
    forbidden = client_for(world["stranger"]).post(url, {"external_id": "SYN00000001"}, format="json")
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json() == missing.json()
    assert client_for(world["viewer"]).post(url, {"external_id": "SYN00000001"}, format="json").status_code == 403
    ids = {row["portfolio"] for row in client_for(world["stranger"]).get("/api/v1/applicants/").json()["results"]}
    assert world["portfolio"].pk not in ids


def test_a_batch_run_through_the_api_exports_escaped_csv(world, django_capture_on_commit_callbacks):
    champion(world)
    owner = client_for(world["owner"])
    with django_capture_on_commit_callbacks(execute=False):
        response = owner.post(
            "/api/v1/batch-runs/", {"portfolio": world["portfolio"].pk, "chunk_size": 500}, format="json"
        )
    assert response.status_code == 202, response.content
    run = BatchRun.objects.get(pk=response.json()["id"])
    for chunk_id in run.chunks.values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    progress = owner.get(f"/api/v1/batch-runs/{run.pk}/").json()["progress"]
    assert progress["rows_done"] == progress["rows_total"] == 1000 and progress["status"] == "done"
    Score.objects.filter(run=run).update(decision="=1+1")
    Applicant.objects.filter(portfolio=world["portfolio"], external_id="SYN00000000").update(external_id="@SUM(A1:A9)")
    export = owner.get(f"/api/v1/batch-runs/{run.pk}/export/")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(rows) == 1000
    assert {row["decision"] for row in rows} == {"'=1+1"}
    assert "'@SUM(A1:A9)" in {row["applicant_external_id"] for row in rows}
    assert float(rows[0]["pd"]) > 0  # numbers stay numbers
    parquet = owner.get(f"/api/v1/batch-runs/{run.pk}/export/?file_format=parquet")
    assert parquet.status_code == 200
    assert b"".join(parquet.streaming_content).startswith(b"PAR1")  # read to its end: the stored export is deleted
    assert client_for(world["viewer"]).get(f"/api/v1/batch-runs/{run.pk}/export/").status_code == 403


def test_approval_through_the_api_keeps_four_eyes(world):
    version = world["version"]
    assert client_for(world["developer"]).post(f"/api/v1/models/{version.pk}/approve/").status_code == 404
    response = client_for(world["validator"]).post(f"/api/v1/models/{version.pk}/approve/")
    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert client_for(world["owner"]).post(f"/api/v1/models/{version.pk}/promote/").status_code == 403


def test_an_explanation_names_every_input_group_and_adds_up_to_the_stored_decision(world):
    champion(world)
    owner = client_for(world["owner"])
    scored = owner.post(f"/api/v1/portfolios/{world['portfolio'].pk}/score/", {"external_id": "SYN00000007"},
                        format="json").json()  # fmt: skip
    response = client_for(world["viewer"]).get(f"/api/v1/scores/{scored['id']}/explanation/")
    assert response.status_code == 200, response.content
    explanation = response.json()
    stored = Score.objects.get(pk=scored["id"])
    assert explanation["pd"] == stored.pd and explanation["decision"] == stored.decision
    log_odds = math.log(stored.pd / (1 - stored.pd))
    total = explanation["base_log_odds"] + sum(c["log_odds"] for c in explanation["contributions"])
    assert total == pytest.approx(log_odds, abs=1e-4) and explanation["log_odds"] == pytest.approx(log_odds, abs=1e-4)
    points = explanation["base_points"] + sum(c["points"] for c in explanation["contributions"])
    assert points == pytest.approx(stored.score, abs=1e-2)
    groups = {c["group"]: c for c in explanation["contributions"]}
    applicant = Applicant.objects.get(portfolio=world["portfolio"], external_id="SYN00000007")
    assert set(applicant.features) <= set(groups)  # every model input of the schema, by name
    assert {g for g in groups if g.startswith("history.")}  # and the CNN's temporal groups
    assert groups["purpose"]["value"] == applicant.features["purpose"]
    assert groups["income"]["value"] == pytest.approx(applicant.features["income"])
    ranked = [c["log_odds"] for c in explanation["contributions"]]
    assert ranked == sorted(ranked, reverse=True)  # largest risk first
    assert explanation["reasons"] == stored.reasons and all(r["text"] for r in explanation["reasons"])
    stranger = client_for(world["stranger"]).get(f"/api/v1/scores/{scored['id']}/explanation/")
    assert stranger.status_code == 404


def test_model_status_and_metrics_answer_for_a_trained_version(world):
    version = world["version"]
    viewer = client_for(world["viewer"])
    status = viewer.get(f"/api/v1/models/{version.pk}/status/").json()
    assert status["status"] == "trained" and status["progress"]["epoch"] >= 1 and status["trained_at"]
    metrics = viewer.get(f"/api/v1/models/{version.pk}/metrics/").json()
    assert 0.5 < metrics["metrics"]["test"]["auc"] <= 1 and "auc" in metrics["baseline_metrics"]["test"]
    assert metrics["training_rows"] > 0 and len(metrics["training_data_fingerprint"]) == 64
    assert client_for(world["stranger"]).get(f"/api/v1/models/{version.pk}/metrics/").status_code == 404
