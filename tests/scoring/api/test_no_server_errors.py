"""Inputs that used to answer 500: each is now a 4xx in the API's error format (or the
admin's "?e=1"), and stored failures reach users without tracebacks or file paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.inference import _deciders
from scoring.models import Applicant, ModelVersion, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.scoring import score_realtime
from scoring.services.training import model_version_create, model_version_train
from scoring.storage import ARTIFACTS, storage
from tests.factories import UserFactory, synthetic_portfolio
from tests.scoring.api.conftest import client_for

LISTS = ["applicants", "scores", "models", "tuning-studies", "batch-runs", "imports"]


OFFSETS = [
    ("2020-01-01T00:00:00+16:00", 200),  # PostgreSQL refuses offsets beyond 15:59: moved to UTC first
    ("2020-01-01T00:00:00-23:59", 200),
    ("0001-01-01T00:00:00+01:00", 400),  # before year 1 once in UTC
    ("9999-12-31T23:59:59-01:00", 400),  # after 9999 once in UTC
    ("2020-01-01T00:00:00+24:00", 400),
]


def test_out_of_range_datetime_filters_are_400s_not_500s(api_world):
    client = client_for(api_world["owner"])
    for path in LISTS:
        for value, expected in OFFSETS:
            for name in ("created_after", "created_before"):
                response = client.get(f"/api/v1/{path}/", {name: value})
                assert response.status_code == expected, (path, name, value, response.content[:300])
                if expected == 400:
                    assert response.json()["error"]["code"] == "invalid"


def test_a_deeply_nested_json_body_is_a_400(api_world):
    client = client_for(api_world["owner"])
    url = f"/api/v1/portfolios/{api_world['mine'].pk}/score/"
    for depth in (100_000, 40):
        body = "[" * depth + "]" * depth
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 400, depth
        assert response.json()["error"]["code"] == "parse_error"
    nested = '{"applicant": {"a": [[[1]]]}}'  # what the API documents nests far less deep
    assert client.post(url, nested, content_type="application/json").status_code != 500


def test_a_form_body_with_more_fields_than_django_allows_is_a_400(api_world, settings):
    """Found by Schemathesis: a form-encoded body of more than DATA_UPLOAD_MAX_NUMBER_FIELDS
    fields raised TooManyFieldsSent inside ``request.data``, which answered 500."""
    client = client_for(api_world["owner"])
    body = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    for url in ("/api/v1/imports/applications/", f"/api/v1/portfolios/{api_world['mine'].pk}/score/"):
        response = client.post(url, body, content_type="application/x-www-form-urlencoded")
        assert response.status_code == 400, (url, response.content)
        assert response.json()["error"]["code"] == "parse_error"


@pytest.mark.parametrize(
    "query",
    ["?decision__exact=%00", "?portfolio=%00", "?q=%00"],
)
def test_admin_filter_inputs_the_database_cannot_take_redirect_like_other_bad_filters(api_world, client, query):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get(f"/admin/scoring/score/{query}")
    assert response.status_code in (200, 302), query


@pytest.mark.parametrize(
    "query",
    ["?occurred_at__year=99999999999999999999999", "?occurred_at__year=2026&occurred_at__month=99999999999999",
     "?occurred_at__day=%00"],
)  # fmt: skip
def test_admin_date_hierarchy_inputs_out_of_range_are_not_500s(db, client, query):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get(f"/admin/scoring/auditevent/{query}")
    assert response.status_code in (200, 302), query
    assert client.get("/admin/scoring/auditevent/?occurred_at__year=2026").status_code == 200


def test_a_stored_training_error_is_shown_without_its_traceback_or_paths(api_world, client):
    version = api_world["version"]
    ModelVersion.objects.filter(pk=version.pk).update(
        status="failed",
        error="RuntimeError: CUDA out of memory in /srv/riskapp/models/training.py\n\nTraceback (most recent call "
        'last):\n  File "/srv/riskapp/models/training.py", line 301, in fit\n    loss.backward()\n',
    )
    owner = client_for(api_world["owner"])
    for url in (f"/api/v1/models/{version.pk}/", f"/api/v1/models/{version.pk}/status/", "/api/v1/models/"):
        text = owner.get(url).content.decode()
        assert "CUDA out of memory" in text, url
        assert "Traceback" not in text and "/srv/riskapp" not in text and "training.py" not in text, url
    client.force_login(api_world["owner"])
    page = client.get(f"/models/{version.pk}/").content.decode()
    assert "CUDA out of memory" in page and "Traceback" not in page and "/srv/riskapp" not in page


@pytest.mark.slow
def test_a_tampered_explainer_background_answers_the_documented_409(db):
    portfolio = synthetic_portfolio(n=400, seed=23)
    developer, validator, analyst = (UserFactory(username=n) for n in ("dev", "val", "ana"))
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    version = model_version_create(portfolio=portfolio, kind="mlp", seed=1, requested_by=developer,
                                   hyperparameters={"max_epochs": 3, "patience": 2, "batch_size": 128})  # fmt: skip
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator)
    applicant = Applicant.objects.filter(portfolio=portfolio).first()
    score_realtime(portfolio=portfolio, requested_by=analyst, applicant=applicant)
    score = Score.objects.filter(applicant=applicant).latest("pk")
    client = client_for(analyst)
    assert client.get(f"/api/v1/scores/{score.pk}/explanation/").status_code == 200
    background = Path(storage(ARTIFACTS).path(version.background_name))
    data = bytearray(background.read_bytes())
    data[-10] ^= 0xFF
    background.write_bytes(bytes(data))
    _deciders.clear()  # a fresh worker process: nothing loaded yet
    response = client.get(f"/api/v1/scores/{score.pk}/explanation/")
    assert response.status_code == 409, response.content[:300]
    body = response.json()["error"]
    assert body["code"] == "conflict" and "cannot be loaded" in body["message"]
    assert str(background.parent) not in body["message"]  # no server paths either
