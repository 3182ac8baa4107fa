"""The leakage screen and the out-of-time split through the service: the hard
synthetic book imported by the ingestion path, a trees model trained on it, the
planted leak flagged (and nothing else), promotion refused at every entry point
until a validator gives an override reason, which is recorded and audited."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from models.synthetic import HARD_LEAK
from scoring.models import AuditEvent, ModelVersion
from scoring.services.access import portfolio_access_grant
from scoring.services.datasets import attach_outcomes, portfolio_data
from scoring.services.demo import synthetic_hard_load
from scoring.services.registry import PromotionBlocked, model_version_approve, model_version_promote
from scoring.services.training import model_version_create, model_version_train, training_split
from tests.conftest import flush_database
from tests.factories import UserFactory

FAST = {"n_estimators": 60, "num_threads": 1}
ROWS = 4000


@pytest.fixture(scope="module")
def hard_book(django_db_setup, django_db_blocker, tmp_path_factory):
    """The hard synthetic book (4,000 applications, the newest without outcome) and an
    approved trees model trained on it: built once for the module, removed after it."""
    from django.conf import settings

    with django_db_blocker.unblock():
        original = settings.VAR_DIR
        settings.VAR_DIR = tmp_path_factory.mktemp("var")
        try:
            job = synthetic_hard_load(name="Hard book", count=ROWS, seed=3)
        finally:
            settings.VAR_DIR = original
        portfolio = job.portfolio
        users = {name: UserFactory(username=f"hard-{name}") for name in ("developer", "validator")}
        portfolio_access_grant(portfolio=portfolio, grantee=users["validator"], role="model validator")
        portfolio_access_grant(portfolio=portfolio, grantee=users["developer"], role="model developer")
        queued = model_version_create(
            portfolio=portfolio, kind="trees", seed=1, hyperparameters=FAST, requested_by=users["developer"]
        )
        version = model_version_train(model_version_id=queued.pk)
        assert version is not None and version.status == ModelVersion.STATUS_TRAINED, version and version.error
        model_version_approve(version=version, user=users["validator"])
        yield {"job": job, "portfolio": portfolio, "version": version, **users}
        flush_database()


@pytest.mark.django_db
def test_the_hard_book_imports_with_its_unlabelled_recent_applications(hard_book):
    job = hard_book["job"]
    assert job.rows_created == ROWS
    data = attach_outcomes(
        portfolio_data(portfolio=hard_book["portfolio"], with_history=False), portfolio=hard_book["portfolio"]
    )
    assert data.application_dates is not None and not np.isnat(data.application_dates).any()
    unlabelled = np.isnan(data.defaulted)
    assert 0.03 < unlabelled.mean() < 0.2
    # The applications without an outcome are the newest ones.
    assert data.application_dates[unlabelled].min() > data.application_dates[~unlabelled].max()
    assert hard_book["version"].training_rows == int((~unlabelled).sum())


@pytest.mark.django_db
def test_the_screen_flags_the_planted_leak_and_nothing_else(hard_book):
    screen = hard_book["version"].screen
    assert screen["flagged"] == [HARD_LEAK], screen["findings"]
    (finding,) = screen["findings"]
    assert finding.startswith(f"{HARD_LEAK}: multiple of 12")
    assert {f["feature"] for f in screen["features"]} >= {"industry_code", "credit_score", "debt_to_income"}
    assert screen["model"]["flags"] == []


@pytest.mark.django_db
def test_no_training_row_is_newer_than_any_test_row_out_of_time(hard_book):
    version = hard_book["version"]
    validations = version.validations
    assert validations["trained_on"] == "out_of_time"
    assert set(validations) == {"trained_on", "out_of_time", "stratified"}
    for scheme in ("out_of_time", "stratified"):
        assert validations[scheme]["test"]["auc"] > 0.6 and validations[scheme]["baseline_test"]["auc"] > 0.5
    # The stored figures of the model are those of its own (out-of-time) test rows.
    assert version.metrics["test"] == validations["out_of_time"]["test"]
    data = attach_outcomes(
        portfolio_data(portfolio=hard_book["portfolio"], with_history=False), portfolio=hard_book["portfolio"]
    )
    labelled = data.subset(np.flatnonzero(~np.isnan(data.defaulted)))
    name, parts = training_split(labelled, labelled.defaulted.astype(np.int64), seed=version.seed)
    assert name == "out_of_time"
    dates = labelled.application_dates
    assert dates[parts["train"]].max() < dates[parts["test"]].min()
    assert (
        dates[parts["train"]].max()
        < dates[parts["validation"]].min()
        <= dates[parts["validation"]].max()
        < dates[parts["test"]].min()
    )
    stored = validations["out_of_time"]["dates"]
    assert stored["train"][1] < stored["validation"][0] and stored["validation"][1] < stored["test"][0]
    assert stored["test"] == [str(dates[parts["test"]].min()), str(dates[parts["test"]].max())]


@pytest.mark.django_db
def test_a_flagged_model_is_promoted_only_with_an_override_reason_at_every_entry_point(hard_book):
    version, validator = hard_book["version"], hard_book["validator"]
    with pytest.raises(PromotionBlocked, match="leakage screen flagged term_months") as blocked:
        model_version_promote(version=version, user=validator)
    assert blocked.value.screen_findings == version.screen["findings"]
    with pytest.raises(PromotionBlocked):
        model_version_promote(version=version, user=validator, override_reason="  ")
    denied = AuditEvent.objects.filter(action="model.promote", outcome="denied", object_ids=[version.pk])
    assert denied.count() == 2 and "term_months" in denied.first().details["reason"]

    api = APIClient()
    api.force_authenticate(validator)
    refused = api.post(f"/api/v1/models/{version.pk}/promote/", {}, format="json")
    assert refused.status_code == 409 and "term_months" in refused.json()["error"]["message"]
    detail = api.get(f"/api/v1/models/{version.pk}/").json()
    assert detail["screen"]["flagged"] == [HARD_LEAK]
    assert set(detail["validations"]) == {"trained_on", "out_of_time", "stratified"}
    assert api.get(f"/api/v1/models/{version.pk}/metrics/").json()["screen"]["flagged"] == [HARD_LEAK]

    portal = Client()
    portal.force_login(validator)
    page = portal.get(f"/models/{version.pk}/").content.decode()
    assert 'id="leakage-screen"' in page and "Flagged at training time" in page and HARD_LEAK in page
    assert "Out of time (newest months are the test)" in page and "Stratified random" in page
    response = portal.post(f"/models/{version.pk}/promote/", follow=True)
    assert "Promotion blocked" in response.content.decode()
    version.refresh_from_db()
    assert version.status == ModelVersion.STATUS_APPROVED

    reason = "Term is recorded at charge-off; dropped from the next schema, accepted for this pilot."
    promoted = portal.post(f"/models/{version.pk}/promote/", {"override_reason": reason})
    assert promoted.status_code == 302
    version.refresh_from_db()
    assert version.status == ModelVersion.STATUS_CHAMPION
    assert version.promotion_override_reason == reason and version.promotion_override_by == validator
    event = AuditEvent.objects.get(action="model.promote_override", object_ids=[version.pk])
    assert event.actor_id == validator.pk
    assert event.details["leakage_screen"] == [HARD_LEAK] and event.details["reason"] == reason
