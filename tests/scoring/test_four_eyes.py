"""Four eyes without gaps, and rollback of the champion."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from scoring.models import AuditEvent, ModelVersion, Portfolio
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import BatchError, batch_run_create, nightly_runs_start
from scoring.services.registry import (
    RegistryError,
    champion_restore_previous,
    model_version_approve,
    model_version_promote,
    model_version_restore,
)
from scoring.services.scoring import score_realtime
from scoring.services.training import model_version_create, model_version_train
from tests.factories import PortfolioFactory, UserFactory, synthetic_portfolio

FAST = {"max_epochs": 3, "patience": 2, "batch_size": 128}


@pytest.fixture
def book(db):
    portfolio = PortfolioFactory(name="four eyes")
    validator, developer = UserFactory(username="val"), UserFactory(username="dev")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="model developer")
    champion = ModelVersion.objects.create(
        portfolio=portfolio, version=1, kind="mlp", status="champion", schema=portfolio.schema, trained_by=developer
    )
    return portfolio, validator, developer, champion


def version_of(portfolio, number, status, trained_by=None):
    return ModelVersion.objects.create(
        portfolio=portfolio, version=number, kind="mlp", status=status, schema=portfolio.schema, trained_by=trained_by
    )


def test_a_version_with_no_recorded_trainer_cannot_be_approved_by_anyone(book):
    portfolio, validator, _developer, _ = book
    anonymous = version_of(portfolio, 2, "trained", trained_by=None)  # what the CLI recorded before --as
    root = UserFactory(username="root", is_superuser=True)
    for user in (validator, root):
        with pytest.raises(RegistryError, match="no recorded trainer"):
            model_version_approve(version=anonymous, user=user)
    anonymous.refresh_from_db()
    assert anonymous.status == "trained"
    assert AuditEvent.objects.filter(action="model.approve", outcome="denied").count() == 2


def test_train_and_tune_commands_require_an_acting_user_with_the_train_grant(book):
    portfolio, validator, _developer, _ = book
    with pytest.raises(CommandError, match="--as"):
        call_command("train_model", "--portfolio", portfolio.name, "--kind", "mlp", "--no-wait")
    with pytest.raises(CommandError, match="may not"):
        call_command("train_model", "--as", validator.username, "--portfolio", portfolio.name, "--kind", "mlp")
    with pytest.raises(CommandError, match="No active user"):
        call_command("tune_model", "--as", "nobody", "--portfolio", portfolio.name, "--kind", "mlp", "--trials", "1")
    with pytest.raises(CommandError, match="may not"):
        call_command("tune_model", "--as", validator.username, "--portfolio", portfolio.name, "--kind", "mlp",
                     "--trials", "1")  # fmt: skip
    assert ModelVersion.objects.filter(portfolio=portfolio).count() == 1


def test_train_model_records_the_acting_user_as_trainer(book, django_capture_on_commit_callbacks):
    portfolio, _validator, developer, _ = book
    with django_capture_on_commit_callbacks(execute=False):
        call_command("train_model", "--as", developer.username, "--portfolio", portfolio.name, "--kind", "mlp",
                     "--no-wait")  # fmt: skip
    assert ModelVersion.objects.get(portfolio=portfolio, version=2).trained_by == developer


def test_a_failed_challenger_is_refused_by_the_service_the_api_the_command_and_the_nightly_run(
    book, django_capture_on_commit_callbacks
):
    portfolio, _validator, developer, _ = book
    failed = version_of(portfolio, 2, "failed", trained_by=developer)
    with pytest.raises(BatchError, match="only an approved model can be a challenger"):
        batch_run_create(portfolio=portfolio, challenger=failed)

    analyst = UserFactory(username="analyst")
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    api = APIClient()
    api.force_authenticate(analyst)
    response = api.post("/api/v1/batch-runs/", {"portfolio": portfolio.pk, "challenger": failed.pk}, format="json")
    assert response.status_code == 409 and "approved" in str(response.json())

    with pytest.raises(CommandError, match="approved"):
        call_command("score_portfolio", "--portfolio", portfolio.name, "--challenger", str(failed.pk), "--sync")

    Portfolio.objects.filter(pk=portfolio.pk).update(challenger_version=failed)  # set behind the admin's back
    with django_capture_on_commit_callbacks(execute=False):
        (run,) = nightly_runs_start()
    assert run.challenger_version_id is None  # the champion's run goes ahead without it
    assert not portfolio.batch_runs.filter(challenger_version=failed).exists()


def test_the_admin_offers_only_approved_challengers(book, client):
    portfolio, _validator, developer, _ = book
    failed = version_of(portfolio, 2, "failed", trained_by=developer)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    form = {"name": portfolio.name, "description": "", "schema": portfolio.schema_id, "is_active": "on",
            "base_score": 600, "base_odds": 50, "pdo": 20, "approve_min_score": 560, "decline_below_score": 530,
            "challenger_version": failed.pk}  # fmt: skip
    response = client.post(f"/admin/scoring/portfolio/{portfolio.pk}/change/", form)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert Portfolio.objects.get(pk=portfolio.pk).challenger_version is None


@pytest.fixture
def two_champions(db):
    portfolio = synthetic_portfolio(n=500, seed=12)
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    versions = []
    for seed in (1, 2):
        version = model_version_create(
            portfolio=portfolio, kind="mlp", seed=seed, hyperparameters=FAST, requested_by=developer
        )
        version = model_version_train(model_version_id=version.pk)
        model_version_approve(version=version, user=validator)
        versions.append(model_version_promote(version=version, user=validator, override_reason="test book"))
    return portfolio, validator, developer, versions


def test_restoring_the_previous_champion_makes_scoring_use_it_again(two_champions):
    portfolio, validator, developer, (first, second) = two_champions
    applicant = portfolio.applicants.order_by("id").first()
    assert score_realtime(portfolio=portfolio, applicant=applicant).model_version_id == second.pk
    with pytest.raises(RegistryError, match="reason"):
        champion_restore_previous(portfolio=portfolio, user=validator, reason=" ")
    with pytest.raises(RegistryError, match="validator"):
        champion_restore_previous(portfolio=portfolio, user=developer, reason="bad release")
    restored = champion_restore_previous(portfolio=portfolio, user=validator, reason="v2 misprices the self-employed")
    assert restored.pk == first.pk and restored.is_champion
    assert ModelVersion.objects.get(pk=second.pk).status == "retired"
    assert score_realtime(portfolio=portfolio, applicant=applicant).model_version_id == first.pk
    event = AuditEvent.objects.get(action="model.rollback_reason")
    assert event.details == {"reason": "v2 misprices the self-employed", "replaced": [second.pk]}
    assert AuditEvent.objects.filter(action="model.rollback", outcome="success").count() == 1
    # And forward again: any previously approved version can be re-promoted.
    assert model_version_restore(version=second, user=validator, reason="fixed upstream data").is_champion
    with pytest.raises(RegistryError, match="retired champion"):
        model_version_restore(version=second, user=validator, reason="again")
