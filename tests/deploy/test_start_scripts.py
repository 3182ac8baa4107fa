"""The container start scripts run for real (outside a container): docker/start/worker
consumes the prefixed queues it is given with Celery's autoscaler, docker/start/web serves
through gunicorn, and docker/start/healthcheck tells a live process from a dead one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from scoring.tasks import score_recover_runs
from tests.conftest import database_url_for_subprocess, wait_for
from tests.deploy.conftest import DOCKER, ROOT

START = DOCKER / "start"


def script_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "RISKAPP_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",  # celery, gunicorn, python of this virtualenv
        "DATABASE_URL": database_url_for_subprocess(),
        "VAR_DIR": str(settings.VAR_DIR),
        "ARTIFACT_DIR": str(settings.ARTIFACT_DIR),
        "CELERY_QUEUE_PREFIX": settings.CELERY_QUEUE_PREFIX,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


class Started:
    def __init__(self, script: str, log: Path, **extra: str):
        self.log_path = log
        self.process = subprocess.Popen(
            [str(START / script)], env=script_env(**extra), cwd=ROOT,
            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def started(transactional_db, tmp_path):
    processes: list[Started] = []

    def start(script: str, **extra: str) -> Started:
        process = Started(script, tmp_path / f"{script}-{len(processes)}.log", **extra)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


def healthcheck(**extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(START / "healthcheck")], env=script_env(**extra), cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.worker
@pytest.mark.slow
def test_the_worker_script_consumes_the_prefixed_score_queue_with_autoscale(started):
    worker = started("worker", WORKER_QUEUES="score", WORKER_AUTOSCALE="2,1", WORKER_NAME="scoretest")

    def ready():
        assert worker.process.poll() is None, worker.log()
        return " ready." in worker.log()

    wait_for(ready, timeout=90, message="the worker to start")
    banner = worker.log()
    assert f".> {settings.CELERY_QUEUES_BY_ROLE['score']} " in banner
    # The queue list's lines (".> name exchange=..."): a bare word test would trip on any log
    # line that says "default" (a settings warning, a task's name).
    assert f".> {settings.CELERY_QUEUES_BY_ROLE['default']} " not in banner
    assert "{min=1, max=2} (prefork)" in banner  # autoscale: min 1, max 2 pool processes

    score_recover_runs.delay()  # routed to the score queue
    wait_for(lambda: "Task scoring.tasks.score_recover_runs[" in worker.log(), timeout=60, message="the task")

    alive = healthcheck(RISKAPP_ROLE="worker", WORKER_NAME="scoretest")
    assert alive.returncode == 0, alive.stdout + alive.stderr


def test_the_worker_script_refuses_an_unknown_queue_role():
    result = subprocess.run(
        [str(START / "worker")], env={**os.environ, "WORKER_QUEUES": "score,gpu"}, capture_output=True, text=True
    )
    assert result.returncode == 64
    assert "unknown role 'gpu'" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_web_script_serves_and_the_health_check_sees_it(started, tmp_path):
    port = str(free_port())
    dead = healthcheck(RISKAPP_ROLE="web", PORT=port)
    assert dead.returncode != 0  # nothing listens yet

    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_4242.db").write_bytes(b"left over from the last start")
    web = started("web", PORT=port, WEB_CONCURRENCY="1", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert web.process.poll() is None, web.log()
        if healthcheck(RISKAPP_ROLE="web", PORT=port, ALLOWED_HOSTS="localhost,127.0.0.1").returncode == 0:
            break
        time.sleep(1)
    else:
        pytest.fail(f"web never healthy:\n{web.log()}")
    assert '"GET /healthz HTTP/1.1" 200' in web.log()  # gunicorn's access log goes to stdout
    # Multiprocess metrics: the last start's samples are gone, this one's are written there.
    files = {path.name for path in metrics_dir.iterdir()}
    assert "counter_4242.db" not in files
    assert any(name.endswith(".db") for name in files), files
