"""Bench: real-time scoring latency with the web server as in production (gunicorn).

    python bench/realtime_latency.py [--clients 20] [--seconds 60] [--workers 2]

Recreates the PostgreSQL database `riskapp_rt`, loads 20,000 synthetic applicants,
trains an MLP and a CNN (developer trains, validator approves), then for each model
as champion starts gunicorn and sends POST /api/v1/portfolios/{id}/score/ (a random
stored applicant, reasons included) from N concurrent clients for S seconds.
Reports p50, p99 and requests/s. Targets: p99 <= 50 ms (MLP), <= 100 ms (CNN).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _env import bench_environment  # noqa: E402  (bench/ is on sys.path)

DB = "riskapp_rt"
PORT = 8791


def setup() -> tuple[int, dict, str]:
    pg = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["dropdb", *pg, "--if-exists", DB], check=True)
    subprocess.run(["createdb", *pg, DB], check=True)
    bench_environment(DB)
    import django

    django.setup()
    from django.core.management import call_command

    from scoring.services.demo import SYNTHETIC, demo_users_ensure, synthetic_load
    from scoring.services.tokens import api_token_create
    from scoring.services.training import model_version_create, model_version_train

    call_command("migrate", verbosity=0)
    synthetic_load(count=20_000, seed=3)
    demo_users_ensure()
    from django.contrib.auth import get_user_model

    from scoring.models import Portfolio

    users = {u.username: u for u in get_user_model().objects.all()}
    portfolio = Portfolio.objects.get(name=SYNTHETIC)
    versions = {}
    for kind in ("mlp", "cnn"):
        queued = model_version_create(
            portfolio=portfolio, kind=kind, hyperparameters={"max_epochs": 5}, requested_by=users["developer"]
        )
        versions[kind] = model_version_train(model_version_id=queued.pk)
    _, key = api_token_create(user=users["analyst"], name="bench", portfolios=[portfolio])
    return portfolio.pk, versions, key


def promote(version) -> None:
    from django.contrib.auth import get_user_model

    from scoring.models import ModelVersion
    from scoring.services.registry import model_version_approve, model_version_promote

    validator = get_user_model().objects.get(username="validator")
    version.refresh_from_db()
    if version.status == ModelVersion.STATUS_TRAINED:
        model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator, override_reason="benchmark of synthetic applicants")


def load(portfolio_id: int, token: str, clients: int, seconds: float, ids: list[str]) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    body_of = lambda: json.dumps({"external_id": random.choice(ids)})  # noqa: E731
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.request("POST", f"/api/v1/portfolios/{portfolio_id}/score/", body=body_of(), headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 201:
                with lock:
                    errors[0] += 1
            mine.append(elapsed)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms), "errors": errors[0], "requests_per_second": round(len(ms) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    portfolio_id, versions, token = setup()
    from scoring.models import Applicant

    ids = list(Applicant.objects.filter(portfolio_id=portfolio_id).values_list("external_id", flat=True))
    results = {"clients": args.clients, "seconds": args.seconds, "gunicorn_workers": args.workers}
    env = {**os.environ, "DATABASE_URL": os.environ["DATABASE_URL"]}
    for kind, target in (("mlp", 50), ("cnn", 100)):
        promote(versions[kind])
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "riskapp.wsgi:application", "--bind", f"127.0.0.1:{PORT}",
             "--workers", str(args.workers), "--log-level", "warning"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            for _ in range(60):
                try:
                    http.client.HTTPConnection("127.0.0.1", PORT, timeout=1).request("GET", "/healthz")
                    break
                except OSError:
                    time.sleep(0.5)
            load(portfolio_id, token, 2, 3, ids)  # warm-up: each worker loads the model once
            result = load(portfolio_id, token, args.clients, args.seconds, ids)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        result["target_p99_ms"] = target
        results[kind] = result
        print(kind, result, flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "realtime_latency.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
