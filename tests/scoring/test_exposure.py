"""Exposure: the probes and /metrics tell anonymous callers nothing but their status,
no answer may be cached, unknown API paths are JSON 404s whatever the method, and every
start path collects the static files."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from scoring.models import ModelVersion
from scoring.services.access import user_role_add
from tests.factories import PortfolioFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture
def secret_book():
    portfolio = PortfolioFactory(name="Secret Book")
    ModelVersion.objects.create(portfolio=portfolio, version=3, kind="mlp", status="champion", schema=portfolio.schema)
    return portfolio


def test_anonymous_probes_answer_their_status_and_nothing_else(secret_book, settings):
    settings.METRICS_BEARER_TOKEN = None
    anonymous = Client()
    health = anonymous.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 503 and ready.json() == {"status": "error"}  # the champion's artifact is missing
    assert b"Secret Book" not in ready.content
    metrics = anonymous.get("/metrics")
    assert metrics.status_code == 401 and b"Secret Book" not in metrics.content


def test_authorised_callers_get_the_details(secret_book, settings):
    settings.METRICS_BEARER_TOKEN = "scraper-token-123"
    scraper = Client(headers={"Authorization": "Bearer scraper-token-123"})
    ready = scraper.get("/readyz").json()
    assert "model:Secret Book" in ready["failed"] and ready["database"]["ok"]
    assert b"Secret Book" in scraper.get("/metrics").content
    administrator = UserFactory(username="ops_admin", is_staff=True)
    user_role_add(user=administrator, role="administrator")
    settings.METRICS_BEARER_TOKEN = None
    signed_in = Client()
    signed_in.force_login(administrator)
    assert "model:Secret Book" in signed_in.get("/readyz").json()["failed"]
    assert signed_in.get("/metrics").status_code == 200
    analyst = Client()
    analyst.force_login(UserFactory(username="just_an_analyst"))
    assert analyst.get("/readyz").json() == {"status": "error"} and analyst.get("/metrics").status_code == 401


def test_no_page_or_api_answer_may_be_cached(secret_book):
    user = UserFactory(username="looker", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    for url in ("/", "/applicants/", "/api/v1/applicants/", "/api/v1/scores/", "/admin/scoring/applicant/",
                "/api/v1/nope/", "/login/", "/healthz"):  # fmt: skip
        response = client.get(url)
        assert "no-store" in response.get("Cache-Control", ""), (url, response.get("Cache-Control"))


def test_unknown_api_paths_answer_the_json_404_whatever_the_method():
    for client in (Client(enforce_csrf_checks=True), _signed_in()):
        for path in ("/api/v1/no-such-thing/", "/api/v1/portfolios/1/nothing-here/", "/api/v2/x", "/api/"):
            for method in ("post", "put", "patch", "delete", "get", "options"):
                response = getattr(client, method)(path)
                assert response.status_code == 404, (method, path, response.status_code)
                assert response.json()["error"]["code"] == "not_found"


def _signed_in() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="session_user"))
    return client


@pytest.mark.parametrize("script", ["web", "dev"])
def test_every_start_path_that_serves_pages_collects_static_files_first(script):
    text = (ROOT / "docker" / "start" / script).read_text()
    assert "collectstatic --no-input" in text
    assert text.index("collectstatic") < text.index("gunicorn riskapp.wsgi")
