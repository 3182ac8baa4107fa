"""Schemathesis against the OpenAPI schema: generated requests (valid per the
schema, then some deliberately invalid) to every operation, through the Django
WSGI application in process, signed in as an analyst with a token. No answer may
be a server error: bad input is a 4xx, never a 500."""

from __future__ import annotations

import contextlib

import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from scoring.models import TuningStudy
from scoring.services.access import portfolio_access_grant
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.tokens import api_token_create
from scoring.services.training import model_version_create, model_version_train
from tests.factories import UserFactory, synthetic_portfolio

EXAMPLES_PER_OPERATION = 6


def _tuning_study_row(*, portfolio, kind, n_trials, seed=0, requested_by=None):
    """Stands in for ``tuning_study_start``, whose Optuna storage opens a second
    connection (locked out by the test transaction on SQLite) and whose trials go to
    the broker at once; its own tests run it for real."""
    return TuningStudy.objects.create(
        portfolio=portfolio, kind=kind, n_trials=n_trials, seed=seed, requested_by=requested_by,
        study_name=f"schemathesis-{portfolio.pk}-{TuningStudy.objects.count()}",
    )  # fmt: skip


@pytest.fixture
def wsgi_app():
    """The project's WSGI application, keeping the test's database connection open
    across requests (as Django's test client does: the handler's signals would
    close it after each request, and with it the test transaction)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def analyst_world(db, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("scoring.api.views.tuning_study_start", _tuning_study_row)
    cache.clear()
    portfolio = synthetic_portfolio(n=400, seed=41, name="Fuzzed")
    analyst, developer, validator = UserFactory(), UserFactory(), UserFactory()
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="senior analyst")
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="model developer")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    version = model_version_train(
        model_version_id=model_version_create(
            portfolio=portfolio, kind="mlp", hyperparameters={"max_epochs": 3, "patience": 2}, requested_by=developer
        ).pk
    )
    model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator, override_reason="schemathesis fixture")
    _, key = api_token_create(user=analyst, name="schemathesis")
    return {"portfolio": portfolio, "key": key}


def fuzz_test(operation, headers: dict, failures: list[str], statuses: list[int]):
    """A hypothesis test of one operation: valid requests per the schema, then invalid ones."""
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
        generation_mode=GenerationMode.NEGATIVE
    )

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,  # no example replay across runs: every run is fresh
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        response = case.call(headers=headers)
        statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=[not_a_server_error], headers=headers)
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc).strip().splitlines()[0][:300]}")
            raise

    return fuzz


@pytest.mark.slow
def test_no_generated_request_makes_the_api_answer_a_server_error(analyst_world, wsgi_app):
    document = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(document)
    schema.app = wsgi_app
    headers = {"Authorization": f"Token {analyst_world['key']}"}
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # A failure is recorded in `failures` with its operation; hypothesis then re-raises
        # the shrunk example, which would stop the loop: every operation runs, all are reported.
        with contextlib.suppress(Exception):
            fuzz_test(operation, headers, failures, statuses)()

    assert operations >= 30
    # The requests did reach the views: successes and refusals of bad input both occur.
    assert len(statuses) >= operations * 2
    assert any(200 <= code < 300 for code in statuses) and any(code == 400 for code in statuses)
    print(f"\nschemathesis: {operations} operations, {len(statuses)} requests, statuses {sorted(set(statuses))}")
    assert failures == [], "\n".join(dict.fromkeys(failures))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/scores/", "/api/v1/applicants/", "/api/v1/models/", "/api/v1/batch-runs/"])
@pytest.mark.parametrize("value", ["1" + "0" * 30, "-" + "9" * 25])
def test_an_id_filter_out_of_the_databases_range_is_a_400_not_a_500(path, value):
    """Found by the fuzzing above: such ids overflowed in the database driver."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(UserFactory())
    response = client.get(f"{path}?portfolio={value}")
    assert response.status_code == 400, response.content
