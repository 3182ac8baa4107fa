"""Rollback (#12 Deliver 2): re-promote a previously approved version, or restore the
previous champion in one click, from the API, the portal and the command line, all
through the registry services, audited with the reason; the next real-time score
uses the restored champion."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from scoring.models import Applicant, AuditEvent, ModelVersion
from scoring.services.access import portfolio_access_grant
from scoring.services.registry import model_version_approve, model_version_promote, model_version_restore
from scoring.services.scoring import score_realtime
from scoring.services.tokens import api_token_create
from scoring.services.training import model_version_create, model_version_train
from tests.conftest import flush_database
from tests.factories import UserFactory, synthetic_portfolio

FAST = {"max_epochs": 2, "patience": 1, "batch_size": 128}
REASON = "v2 approves too many thin-file applicants; back to v1 until reviewed"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Two approved MLPs of one portfolio; v1 was champion, then v2 replaced it."""
    from scoring.caches import process_cache
    from scoring.services.policy import policy_cache_clear

    process_cache.clear()  # a module before this one flushed the database (ids start again)
    policy_cache_clear()
    with django_db_blocker.unblock():
        portfolio = synthetic_portfolio(n=400, seed=31, name="Rollback")
        users = {n: UserFactory(username=f"rb-{n}") for n in ("developer", "validator", "analyst", "owner")}
        portfolio_access_grant(portfolio=portfolio, grantee=users["validator"], role="model validator")
        portfolio_access_grant(portfolio=portfolio, grantee=users["analyst"], role="analyst")
        portfolio_access_grant(portfolio=portfolio, grantee=users["owner"], role="senior analyst")
        versions = []
        for seed in (1, 2):
            queued = model_version_create(
                portfolio=portfolio, kind="mlp", seed=seed, hyperparameters=FAST, requested_by=users["developer"]
            )
            version = model_version_approve(
                version=model_version_train(model_version_id=queued.pk), user=users["validator"]
            )
            versions.append(model_version_promote(version=version, user=users["validator"], override_reason="test"))
        yield {"portfolio": portfolio, "v1": versions[0], "v2": versions[1], **users}
        flush_database()


@pytest.fixture
def book(world, db):
    """v2 champion and v1 retired at the start of every test (whatever the last one did)."""
    v2 = ModelVersion.objects.get(pk=world["v2"].pk)
    if v2.status != ModelVersion.STATUS_CHAMPION:
        model_version_restore(version=v2, user=world["validator"], reason="test set-up")
    return world


def champion_pk(world) -> int:
    return ModelVersion.objects.get(portfolio=world["portfolio"], status=ModelVersion.STATUS_CHAMPION).pk


def token_client(user) -> Client:
    _, key = api_token_create(user=user, name="rb")
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


def next_realtime_version(world) -> int:
    """The model version of the next real-time score, on the lean API path (its per-process
    champion cache must have seen the change) and on the full path."""
    applicant = Applicant.objects.filter(portfolio=world["portfolio"]).order_by("pk").first()
    response = token_client(world["owner"]).post(
        f"/api/v1/portfolios/{world['portfolio'].pk}/score/",
        data=json.dumps({"external_id": applicant.external_id}), content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    full = score_realtime(portfolio=world["portfolio"], applicant=applicant, requested_by=world["owner"])
    assert response.json()["model_version"] == full.model_version_id
    return full.model_version_id


def rollback_audited(version_pk: int, reason: str) -> bool:
    events = AuditEvent.objects.filter(action="model.rollback_reason", object_type="modelversion")
    return any(e.object_ids == [version_pk] and e.details["reason"] == reason for e in events) and (
        AuditEvent.objects.filter(action="model.rollback", outcome="success", object_type="modelversion").exists()
    )


def test_the_api_restores_the_previous_champion_and_the_next_score_uses_it(book):
    portfolio = book["portfolio"]
    assert next_realtime_version(book) == book["v2"].pk  # warms the lean path's champion cache with v2
    response = token_client(book["validator"]).post(
        f"/api/v1/portfolios/{portfolio.pk}/restore-champion/", {"reason": REASON}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["id"] == book["v1"].pk and response.json()["status"] == "champion"
    assert champion_pk(book) == book["v1"].pk
    assert ModelVersion.objects.get(pk=book["v2"].pk).status == ModelVersion.STATUS_RETIRED
    assert next_realtime_version(book) == book["v1"].pk
    assert rollback_audited(book["v1"].pk, REASON)


def test_the_api_re_promotes_a_chosen_retired_version_with_a_reason(book):
    client = token_client(book["validator"])
    client.post(f"/api/v1/portfolios/{book['portfolio'].pk}/restore-champion/", {"reason": REASON},
                content_type="application/json")  # fmt: skip
    response = client.post(f"/api/v1/models/{book['v2'].pk}/restore/", {"reason": "reviewed: v2 is fine"},
                           content_type="application/json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert champion_pk(book) == book["v2"].pk and next_realtime_version(book) == book["v2"].pk
    assert rollback_audited(book["v2"].pk, "reviewed: v2 is fine")


def test_the_api_refuses_a_rollback_without_a_reason_or_the_validate_grant(book):
    portfolio = book["portfolio"]
    path = f"/api/v1/portfolios/{portfolio.pk}/restore-champion/"
    no_reason = token_client(book["validator"]).post(path, {"reason": ""}, content_type="application/json")
    assert no_reason.status_code == 400
    analyst = token_client(book["analyst"]).post(path, {"reason": REASON}, content_type="application/json")
    assert analyst.status_code == 403
    champion = token_client(book["validator"]).post(
        f"/api/v1/models/{book['v2'].pk}/restore/", {"reason": REASON}, content_type="application/json"
    )
    assert champion.status_code == 409  # the champion is not a retired version
    assert champion_pk(book) == book["v2"].pk


def test_the_portal_button_restores_the_previous_champion(book):
    client = Client()
    client.force_login(book["validator"])
    page = client.get(f"/models/{book['v2'].pk}/").content.decode()
    assert f"Restore previous champion (v{book['v1'].version})" in page and "Rollback reason" in page
    response = client.post(f"/portfolios/{book['portfolio'].pk}/restore-champion/", {"reason": REASON})
    assert response.status_code == 302 and response["Location"] == f"/models/{book['v1'].pk}/"
    assert champion_pk(book) == book["v1"].pk and next_realtime_version(book) == book["v1"].pk
    assert rollback_audited(book["v1"].pk, REASON)
    # And back, from the retired version's own page.
    assert "Restore as champion" in client.get(f"/models/{book['v2'].pk}/").content.decode()
    client.post(f"/models/{book['v2'].pk}/restore/", {"reason": "reviewed"})
    assert champion_pk(book) == book["v2"].pk


def test_the_portal_hides_and_refuses_the_rollback_to_an_analyst(book):
    client = Client()
    client.force_login(book["analyst"])
    assert "Restore previous champion" not in client.get(f"/models/{book['v2'].pk}/").content.decode()
    response = client.post(f"/portfolios/{book['portfolio'].pk}/restore-champion/", {"reason": REASON})
    assert response.status_code == 403 and champion_pk(book) == book["v2"].pk


def test_the_portal_without_a_reason_changes_nothing(book):
    client = Client()
    client.force_login(book["validator"])
    response = client.post(f"/portfolios/{book['portfolio'].pk}/restore-champion/", {"reason": " "}, follow=True)
    assert "needs a reason" in response.content.decode() and champion_pk(book) == book["v2"].pk


def test_the_command_restores_as_the_acting_user(book):
    name = book["portfolio"].name
    call_command("restore_champion", "--portfolio", name, "--as", "rb-validator", "--reason", REASON)
    assert champion_pk(book) == book["v1"].pk and next_realtime_version(book) == book["v1"].pk
    assert rollback_audited(book["v1"].pk, REASON)
    call_command("restore_champion", "--portfolio", name, "--as", "rb-validator", "--reason", "back",
                 "--model-version", str(book["v2"].version))  # fmt: skip
    assert champion_pk(book) == book["v2"].pk


def test_the_command_refuses_without_the_grant_or_four_eyes(book):
    name = book["portfolio"].name
    with pytest.raises(CommandError, match="may not"):
        call_command("restore_champion", "--portfolio", name, "--as", "rb-analyst", "--reason", REASON)
    portfolio_access_grant(portfolio=book["portfolio"], grantee=book["developer"], role="model validator")
    with pytest.raises(CommandError, match="Four eyes"):
        call_command("restore_champion", "--portfolio", name, "--as", "rb-developer", "--reason", REASON)
    assert champion_pk(book) == book["v2"].pk
