"""``/metrics`` (Prometheus) and ``/readyz`` (readiness) against a real champion,
the real database and the configured broker."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from celery import shared_task
from kombu import Exchange, Queue
from rest_framework.test import APIClient

from riskapp.celery import app as celery_app
from scoring import inference
from scoring.services.access import portfolio_access_grant
from scoring.services.health import queue_depths
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.training import model_version_create, model_version_train
from scoring.storage import ARTIFACTS, storage
from tests.factories import UserFactory, synthetic_portfolio
from tests.scoring.test_health import authorised_client

FAST = {"max_epochs": 4, "patience": 2, "batch_size": 128}
DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(autouse=True)
def _own_artifact_dir(settings, tmp_path):
    """Artifacts of this test only: other test runs on the machine number portfolios alike."""
    settings.ARTIFACT_DIR = tmp_path / "artifacts"


@pytest.fixture
def client(settings):
    return authorised_client(settings)


@pytest.fixture
def book(db, append_only):
    portfolio = synthetic_portfolio(n=800, seed=41, name="Metrics book")
    analyst, validator = UserFactory(username="analyst"), UserFactory(username="validator")
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    version = model_version_create(
        portfolio=portfolio, kind="mlp", seed=3, hyperparameters=FAST, requested_by=UserFactory(username="developer")
    )
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=validator)
    version = model_version_promote(version=version, user=validator)
    return portfolio, version, analyst


@pytest.fixture
def dead_broker(settings, monkeypatch):
    """Point the broker at a closed port, for Django's settings and for Celery (which
    prefers its loaded configuration and the environment over later settings)."""
    original = celery_app.conf.broker_url
    settings.CELERY_BROKER_URL = DEAD_BROKER
    monkeypatch.setenv("CELERY_BROKER_URL", DEAD_BROKER)
    celery_app.conf.broker_url = DEAD_BROKER
    yield
    celery_app.conf.broker_url = original


def _fresh_process():
    """Forget the models this process loaded, as a newly started web process would."""
    inference._loaded.clear()
    inference._deciders.clear()


def sample(text: str, name: str, **labels) -> float | None:
    """The value of the series ``name`` whose labels include ``labels``."""
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return None


@shared_task(name="tests.metrics.fails", bind=True, max_retries=1)
def _failing_task(self, retry: bool) -> None:
    if retry:
        raise self.retry(countdown=0, exc=RuntimeError("transient"))
    raise ValueError("a bug")


def test_metrics_expose_every_series_after_a_scoring_request(book, client):
    portfolio, version, analyst = book
    # Counters live as long as the process (other tests count too): compare before and after.
    series = {
        "requests": ("riskapp_http_request_duration_seconds_count", {"view": "portfolio-score", "method": "POST",
                                                                     "status": "201"}),
        "scores": ("riskapp_scores_total", {"portfolio": "Metrics book", "model_version": str(version.version),
                                            "mode": "realtime"}),
        "explanations": ("riskapp_explanation_seconds_count", {"kind": "mlp", "mode": "realtime"}),
        "failures": ("riskapp_celery_task_failures_total", {"task": "tests.metrics.fails"}),
        "retries": ("riskapp_celery_task_retries_total", {"task": "tests.metrics.fails"}),
    }  # fmt: skip
    before_text = client.get("/metrics").content.decode()
    before = {key: sample(before_text, name, **labels) or 0.0 for key, (name, labels) in series.items()}

    api = APIClient()
    api.force_authenticate(analyst)
    response = api.post(f"/api/v1/portfolios/{portfolio.pk}/score/", {"external_id": "SYN00000003"}, format="json")
    assert response.status_code == 201, response.content
    celery_app.conf.task_always_eager = True  # run the tasks here, through Celery's tracer and its signals
    try:
        _failing_task.apply(args=[False])
        _failing_task.apply(args=[True])
    finally:
        celery_app.conf.task_always_eager = False

    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics["Content-Type"].startswith("text/plain")
    text = metrics.content.decode()
    after = {key: sample(text, name, **labels) for key, (name, labels) in series.items()}
    # Two failures: the task that raises, and the retried one that raises again (max_retries=1).
    assert {key: after[key] - before[key] for key in series} == {
        "requests": 1, "scores": 1, "explanations": 1, "failures": 2, "retries": 1,
    }  # fmt: skip
    for queue in ("default", "score", "train"):
        assert sample(text, "riskapp_queue_depth", queue=queue) is not None
    assert "riskapp_broker_up 1.0" in text
    assert sample(
        text, "riskapp_model_version_info",
        portfolio="Metrics book", model_version=str(version.version), kind="mlp", status="champion",
    ) == 1  # fmt: skip


@pytest.mark.django_db
def test_metrics_need_the_bearer_token_when_one_is_set(settings):
    from django.test import Client

    client = Client()
    settings.METRICS_BEARER_TOKEN = "s3cret-scraper-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper-token").status_code == 200


@pytest.mark.django_db
def test_queue_depth_counts_the_messages_waiting_in_a_queue(settings):
    name = f"test-depth-{uuid.uuid4().hex[:8]}"
    settings.CELERY_QUEUES_BY_ROLE = {"default": name, "score": f"{name}-score", "train": f"{name}-train"}
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    with celery_app.connection_for_write() as conn:
        producer = conn.Producer()
        for _ in range(3):
            producer.publish({"n": 1}, exchange=queue.exchange, routing_key=name, declare=[queue])
        try:
            assert queue_depths() == {"default": 3, "score": 0, "train": 0}
        finally:
            bound = queue(conn.default_channel)
            bound.purge()
            bound.delete()


@pytest.mark.django_db
def test_metrics_report_the_broker_down_without_failing(client, dead_broker):
    text = client.get("/metrics").content.decode()
    assert "riskapp_broker_up 0.0" in text


def test_readyz_is_200_when_database_broker_and_champions_are_ready(book, client):
    _fresh_process()
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert body["models"]["champions"] == [
        {"portfolio": "Metrics book", "model_version": book[1].version, "kind": "mlp", "ok": True}
    ]
    assert (book[1].pk, book[1].artifact_sha256) in inference._loaded  # ready means loaded


def test_readyz_is_503_naming_the_broker_when_the_broker_is_down(book, client, dead_broker):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"] and body["broker"]["ok"] is False


def test_readyz_is_503_naming_the_portfolio_when_a_champion_artifact_is_missing(book, client):
    _portfolio, version, _ = book
    _fresh_process()
    artifact = Path(storage(ARTIFACTS).path(version.artifact_name))
    moved = artifact.with_suffix(".moved")
    artifact.rename(moved)
    try:
        response = client.get("/readyz")
    finally:
        moved.rename(artifact)
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["models", "model:Metrics book"]
    (entry,) = body["models"]["champions"]
    assert entry["ok"] is False and "FileNotFoundError" in entry["error"]


COUNT_IN_A_PROCESS = """
from types import SimpleNamespace
from scoring.metrics import scores_written
scores_written(portfolio=SimpleNamespace(name="Book"), version=SimpleNamespace(version=4), count=2, mode="batch")
"""
EXPOSE = """
from prometheus_client import generate_latest
from scoring.metrics import _process_registry
print(generate_latest(_process_registry()).decode())
"""


def test_multiprocess_mode_adds_up_the_counts_of_every_process(tmp_path):
    """Gunicorn workers and Celery workers each count in their own process; with
    PROMETHEUS_MULTIPROC_DIR, whichever process answers /metrics reports the sum."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(3):
        subprocess.run([sys.executable, "-c", COUNT_IN_A_PROCESS], cwd=root, env=env, check=True, timeout=120)
    assert len(list(tmp_path.glob("counter_*.db"))) == 3
    out = subprocess.run(
        [sys.executable, "-c", EXPOSE], cwd=root, env=env, check=True, timeout=120, capture_output=True, text=True
    ).stdout
    assert sample(out, "riskapp_scores_total", portfolio="Book", model_version="4", mode="batch") == 6
