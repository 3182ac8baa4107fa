"""Bench: real-time scoring beside the framework's floor, on one server, in one run.

    python bench/realtime_latency.py [--clients 20] [--seconds 30] [--workers 2]
        [--servers sync,gthread,granian] [--threads 4] [--applicants 20000]

Recreates the PostgreSQL database `riskapp_rt`, loads synthetic applicants, trains
an MLP and a CNN (developer trains, validator approves), then for each server
configuration starts gunicorn once (settings: the service's, plus the floor URL,
bench/floor_settings.py) and loads, from N closed-loop clients for S seconds each:

* ``floor``: ``POST /bench/floor/``, a bare DRF view behind our token
  authentication (what every DRF endpoint pays before its own work);
* ``mlp`` and ``cnn``: ``POST /api/v1/portfolios/{id}/score/`` (a random stored
  applicant, reasons included) with that model promoted champion while the server
  runs (the per-process caches see the promotion on the next request).

Reports p50/p99 ms, requests/s, CPU ms per request (the server's processes plus the
PostgreSQL backends of the bench database, from /proc; the clients' own CPU is not
counted) and the load average. Targets (issue 15): MLP >= 0.6 x the floor's req/s,
p99 <= 100 ms (MLP), <= 150 ms (CNN) at 20 clients.
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

DB = os.environ.get("BENCH_DB", "riskapp_rt")  # a shared machine: each user names their own
PORT = int(os.environ.get("BENCH_PORT", "8791"))


def setup(applicants: int) -> tuple[int, dict, str]:
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
    synthetic_load(count=applicants, seed=3)
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
    if version.status == ModelVersion.STATUS_RETIRED:  # the next server configuration: champion again
        ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.STATUS_APPROVED)
        version.refresh_from_db()
    if version.status == ModelVersion.STATUS_TRAINED:
        model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator, override_reason="benchmark of synthetic applicants")


def _ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def _backends() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def cpu_ticks(master: int) -> dict[int, int]:
    """Ticks of the server's processes and of the database's backends serving it."""
    pids = [master, *_children(master), *_backends()]
    return {pid: _ticks(pid) for pid in pids}


def load(path: str, token: str, clients: int, seconds: float, body_of) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.request("POST", path, body=body_of(), headers=headers)
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


def measured(master: int, path: str, token: str, clients: int, seconds: float, body_of) -> dict:
    load(path, token, 2, 3, body_of)  # warm-up: each worker loads the model and fills its caches
    before, load_before = cpu_ticks(master), os.getloadavg()
    result = load(path, token, clients, seconds, body_of)
    after = cpu_ticks(master)
    used = sum(after.get(pid, 0) - ticks for pid, ticks in before.items()) + sum(
        ticks for pid, ticks in after.items() if pid not in before
    )
    ms = used * 1000 / os.sysconf("SC_CLK_TCK")
    result["cpu_ms_per_request"] = round(ms / max(result["requests"], 1), 2)
    result["load_average_before"] = [round(v, 2) for v in load_before]
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return result


def server_command(kind: str, workers: int, threads: int) -> list[str]:
    if kind == "granian":  # its WSGI interface: N blocking threads per worker, as gthread
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "riskapp.wsgi:application",
                "--host", "127.0.0.1", "--port", str(PORT), "--workers", str(workers),
                "--blocking-threads", str(threads), "--log-level", "warning", "--no-ws"]  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "riskapp.wsgi:application", "--config", "docker/gunicorn.conf.py",
               "--bind", f"127.0.0.1:{PORT}", "--workers", str(workers), "--timeout", "120", "--log-level", "warning"]  # fmt: skip
    if kind == "gthread":
        command += ["--worker-class", "gthread", "--threads", str(threads)]
    return command


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="per gthread worker")
    parser.add_argument("--servers", default="sync", help="comma-separated: sync, gthread, granian")
    parser.add_argument("--applicants", type=int, default=20_000)
    args = parser.parse_args()
    portfolio_id, versions, token = setup(args.applicants)
    from scoring.models import Applicant

    ids = list(Applicant.objects.filter(portfolio_id=portfolio_id).values_list("external_id", flat=True))
    score_body = lambda: json.dumps({"external_id": random.choice(ids)})  # noqa: E731
    results = {"clients": args.clients, "seconds": args.seconds, "workers": args.workers,
               "applicants": args.applicants, "cpus": os.cpu_count()}  # fmt: skip
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "floor_settings",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])}  # fmt: skip
    score_path = f"/api/v1/portfolios/{portfolio_id}/score/"
    for kind in args.servers.split(","):
        server = subprocess.Popen(
            server_command(kind, args.workers, args.threads), cwd=ROOT, env=env, start_new_session=True
        )
        row = results[kind if kind == "sync" else f"{kind}x{args.threads}"] = {}
        try:
            for _ in range(240):  # until a worker answers (booting torch on a loaded machine is slow)
                try:
                    probe = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
                    probe.request("GET", "/healthz")
                    if probe.getresponse().status == 200:
                        break
                except OSError:
                    time.sleep(0.5)
            row["floor"] = measured(server.pid, "/bench/floor/", token, args.clients, args.seconds, lambda: "{}")
            print(kind, "floor", row["floor"], flush=True)
            for model, target in (("mlp", 100), ("cnn", 150)):
                promote(versions[model])
                row[model] = measured(server.pid, score_path, token, args.clients, args.seconds, score_body)
                row[model]["target_p99_ms"] = target
                print(kind, model, row[model], flush=True)
            row["mlp_to_floor"] = round(row["mlp"]["requests_per_second"] / row["floor"]["requests_per_second"], 3)
            print(kind, "MLP / floor requests/s:", row["mlp_to_floor"], "(target >= 0.6)", flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "realtime_latency.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
