"""Shared helpers for the deployment tests: the files under docker/ and the settings a
deployment's environment produces (computed by the real settings module in a child process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"


def yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_files() -> list[Path]:
    return sorted(path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml")


def k8s_documents() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in k8s_files() for doc in yaml_documents(path)]


def env_example_names() -> set[str]:
    """Every variable .env.example lists (commented-out ones included)."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))


@cache
def settings_for(**environment: str) -> dict:
    """Celery queue facts of riskapp/settings.py under ``environment`` (a fresh process, so
    module-level settings are computed exactly as a deployed process computes them)."""
    script = (
        "import json, django; django.setup()\n"
        "from django.conf import settings\n"
        "from riskapp.celery import app\n"
        "router = app.amqp.router\n"
        "tasks = ['scoring.tasks.score_chunk', 'scoring.tasks.score_recover_runs', 'scoring.tasks.train_model_version',"
        " 'scoring.tasks.tune_trial', 'scoring.tasks.import_file', 'scoring.tasks.nightly_rescore']\n"
        "print(json.dumps({\n"
        "  'queues_by_role': settings.CELERY_QUEUES_BY_ROLE,\n"
        "  'declared': sorted([q.name, q.exchange.name, q.exchange.type, q.routing_key] for q in app.conf.task_queues),\n"
        "  'routes': {t: router.route({}, t)['queue'].name for t in tasks},\n"
        "  'transport_options': settings.CELERY_BROKER_TRANSPORT_OPTIONS,\n"
        "}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "riskapp.settings", **environment}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
