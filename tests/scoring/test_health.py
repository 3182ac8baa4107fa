import pytest

PROBE_TOKEN = "probe-token-of-the-tests"


def authorised_client(settings):
    """An authorised caller of the probes and /metrics (the platform's bearer token):
    anonymous callers get the status only (tests/scoring/test_exposure.py)."""
    from django.test import Client

    settings.METRICS_BEARER_TOKEN = PROBE_TOKEN
    return Client(headers={"Authorization": f"Bearer {PROBE_TOKEN}"})


@pytest.fixture
def client(settings):
    return authorised_client(settings)


@pytest.mark.django_db
def test_healthz_reports_database_and_broker_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["broker"]["ok"]


@pytest.mark.parametrize(
    "dead_url", ["amqp://guest:guest@127.0.0.1:1//", "redis://127.0.0.1:1/0"], ids=["amqp", "redis"]
)
@pytest.mark.django_db
def test_healthz_reports_an_unreachable_broker_of_either_transport(client, dead_url, monkeypatch):
    from riskapp.celery import app

    original = app.conf.broker_url  # read before the environment changes: Celery prefers it over its config
    monkeypatch.setenv("CELERY_BROKER_URL", dead_url)
    app.conf.broker_url = dead_url
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = original
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False


@pytest.mark.django_db
def test_home_page_serves(client):
    assert client.get("/").status_code == 200
