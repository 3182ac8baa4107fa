"""Pages added for the risk team's day: German credit's long names on the applicant
page, scoring a new application, "score now", what-if old → new, the run detail, the
favicon and the navigation of error pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from scoring.models import BatchRun, Score
from scoring.services.batch import batch_run_cancel, batch_run_create
from tests.conftest import flush_database
from tests.scoring.portal_world import german_world, portal_world

pytestmark = pytest.mark.django_db


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(scope="module")
def german(django_db_setup, django_db_blocker):
    """One German credit world for the module (training it is the slow part)."""
    with django_db_blocker.unblock():
        world = german_world()
        yield world
        flush_database()


def test_the_applicant_page_shows_schema_labels_and_integers_as_integers(german):
    page = client_of(german.users["analyst_a"]).get(f"/applicants/{german.applicant.pk}/").content.decode()
    assert "Status of existing checking account" in page and "status_of_existing_checking_account</th>" not in page
    duration = german.applicant.features["duration_in_month"]
    assert re.search(rf"Duration in month</th><td>{int(duration)}</td>", page)
    assert not re.search(r"Duration in month</th><td>\d+\.0</td>", page)
    assert "Score now" in page and 'id="whatif-form"' in page


def test_an_analyst_scores_a_new_application_from_the_schema_form(german):
    client = client_of(german.users["analyst_a"])
    form = client.get(f"/score/?portfolio={german.portfolio.pk}")
    assert form.status_code == 200 and "Installment rate in percentage of disposable income" in form.content.decode()
    values = dict(german.applicant.features)
    before = Score.objects.count()
    response = client.post(f"/score/?portfolio={german.portfolio.pk}", values)
    assert response.status_code == 302, response.content.decode()[:2000]
    score = Score.objects.latest("id")
    assert Score.objects.count() == before + 1 and score.applicant_id is None
    assert response["Location"] == f"/scores/{score.pk}/"
    detail = client.get(response["Location"]).content.decode()
    assert score.decision in detail and "Reasons" in detail

    # Validated like the API: out of range and unknown category answer on the field, nothing saved.
    bad = {**values, "duration_in_month": 999, "purpose": "a yacht"}
    page = client.post(f"/score/?portfolio={german.portfolio.pk}", bad)
    assert page.status_code == 200 and Score.objects.count() == before + 1
    assert "Ensure this value is less than or equal to 120" in page.content.decode()


def test_scoring_needs_the_scoring_grant(german):
    auditor = client_of(german.users["auditor"])
    assert auditor.get(f"/score/?portfolio={german.portfolio.pk}").status_code == 404
    assert auditor.post(f"/applicants/{german.applicant.pk}/score/").status_code == 403
    assert "Score now" not in auditor.get(f"/applicants/{german.applicant.pk}/").content.decode()


def test_score_now_saves_a_real_time_decision(german):
    client = client_of(german.users["analyst_a"])
    before = Score.objects.filter(applicant=german.applicant).count()
    response = client.post(f"/applicants/{german.applicant.pk}/score/", follow=True)
    assert Score.objects.filter(applicant=german.applicant).count() == before + 1
    assert "Scored now:" in response.content.decode()


def test_whatif_answers_old_and_new_for_pd_points_decision_and_each_reason(german):
    client = client_of(german.users["analyst_a"])
    values = {**german.applicant.features, "credit_amount": 18000, "duration_in_month": 72}
    answer = client.post(f"/applicants/{german.applicant.pk}/whatif/", values).json()
    change = answer["change"]
    assert [m["label"] for m in change["measures"]] == ["Probability of default", "Score (points)", "Decision"]
    pd_row = change["measures"][0]
    assert pd_row["after"] == round(answer["pd"], 4) and pd_row["after"] > pd_row["before"]
    assert change["reasons"] and all({"before_points", "after_points", "label"} <= set(r) for r in change["reasons"])
    assert "Credit amount" in answer["changed_labels"]


def test_the_run_page_shows_decisions_and_a_cancelled_run_has_no_eta(german):
    client = client_of(german.users["analyst_a"])
    page = client.get(f"/runs/{german.run.pk}/").content.decode()
    assert 'data-chart="throughput"' in page and 'data-chart="run-distribution"' in page
    assert "approve" in page and "Done in" in page
    run = batch_run_cancel(run=batch_run_create(portfolio=german.portfolio, chunk_size=100))
    state = client.get(f"/runs/progress/?ids={run.pk}").json()["runs"][0]
    assert run.status == BatchRun.STATUS_CANCELLED
    assert state["eta_seconds"] is None and state["rows_per_second"] is None and "Cancelled" in state["phase"]


def test_the_favicon_and_the_navigation_of_the_404_page(tmp_path):
    world = portal_world(tmp_path, champion=False)
    assert Client().get("/favicon.ico").status_code == 301
    page = client_of(world.users["analyst_a"]).get(f"/applicants/{world.bravo_applicant.pk}/")
    assert page.status_code == 404
    assert 'href="/applicants/"' in page.content.decode() and "Not found" in page.content.decode()


def test_the_audit_log_names_things_renders_details_as_fields_and_counts_right(german):
    client = client_of(german.users["auditor"])
    client.get(f"/applicants/{german.applicant.pk}/")
    page = client.get("/audit/", {"portfolio": german.portfolio.pk}).content.decode()
    assert "German credit</td>" in page
    assert f"v{german.champion.version} MLP" in page  # model.promote's object, not "modelversion 4"
    assert "{'" not in page and "None</code>" not in page  # no Python reprs
    # The count agrees with the rows (the page's own audit.view is among them).
    listed = client.get("/audit/", {"actor": "auditor"}).content.decode()
    count = int(re.search(r"<caption>(\d+) events?</caption>", listed).group(1))
    assert count == listed.count("<tr>") - 1  # minus the header row
    assert "<dt>page</dt>" in listed


def test_the_api_gives_the_model_version_number_beside_its_id(german):
    client = client_of(german.users["analyst_a"])
    body = client.get(f"/api/v1/applicants/{german.applicant.pk}/scores/").json()
    first = body["results"][0] if "results" in body else body[0]
    assert first["model_version"] == german.champion.pk
    assert first["model_version_number"] == german.champion.version


def test_two_versions_are_compared_on_the_candidates_test_rows(german):
    from scoring.services.comparison import model_versions_compare
    from scoring.services.training import model_version_create, model_version_train
    from tests.scoring.portal_world import FAST

    other = model_version_create(
        portfolio=german.portfolio, kind="mlp", seed=0, hyperparameters=FAST, requested_by=german.users["developer"]
    )
    other = model_version_train(model_version_id=other.pk)
    result = model_versions_compare(candidate=other, others=[german.champion])
    test = other.metrics["test"]
    assert result.rows == test["n"] and result.same_data
    mine, theirs = result.entries
    # The candidate's figures on these rows are its stored test figures: the same rows.
    assert mine.metrics["auc"] == pytest.approx(test["auc"], abs=1e-9)
    assert result.baseline["auc"] == other.baseline_metrics["test"]["auc"]
    # The champion (seed 7) trained on some of seed 0's test rows: said, not hidden.
    assert theirs.trained_on_rows > 0

    client = client_of(german.users["validator"])
    page = client.get("/models/compare/", {"versions": [other.pk, german.champion.pk]}).content.decode()
    assert f"{test['n']} applicants" in page and "Logistic baseline" in page
    assert 'data-chart="compare-roc"' in page and "partly in-sample" in page
    detail = client.get(f"/models/{other.pk}/").content.decode()
    assert "Compare on the same rows" in detail and "Champion v" not in detail
    assert re.search(r"Stopped early|Ran all", detail) and "calibration (Platt scaling)" in detail
    counted = sum(other.metrics[s]["n"] for s in ("train", "validation", "test"))
    assert f'<td class="num">{other.training_rows - counted}</td>' in detail


def test_the_model_page_shows_this_versions_monitoring_by_feature_and_group(german):
    page = client_of(german.users["validator"]).get(f"/models/{german.champion.pk}/").content.decode()
    assert "Monitoring of this version" in page
    # Promotion computed stability and fairness on German credit's applicants.
    assert "CSI by feature" in page and "Duration in month</th>" in page
    assert "Fairness: " in page and "Adverse impact ratio" in page
