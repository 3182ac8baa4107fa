"""Bench: batch scoring end to end on PostgreSQL with real Celery workers.

    python bench/batch_e2e.py [--database riskapp_bench] [--workers 2] [--kinds mlp,cnn]

Needs the portfolio "Bench" that ``bench/load_synthetic.py`` loads (1,000,000
synthetic applicants with 24-month histories). Trains an MLP and a CNN on it when
none exists (a developer trains, another user approves and promotes), then for
each model as champion:

- end to end: a batch run through ``batch_run_start`` and N ``celery worker``
  processes (one process each, ``score`` queue, Redis broker): every chunk read
  from PostgreSQL, scored, explained, its scores and reasons written back. Rows/s
  from the run's start to its end; every applicant scored exactly once is checked.
- in-memory limit: the decider alone (model forward + exact DeepSHAP explanation)
  on a sample already in memory, in N processes at once (``--limit-rows`` rows
  in all), so the ratio end-to-end / limit says what the database, broker and
  Python around the model cost.
- the peer: LightGBM + TreeSHAP (``pred_contrib``) on the same inputs, N threads.

Targets (issue #4): MLP >= 5,000 rows/s and CNN >= 1,000 rows/s end to end with
2 workers, ratio >= 0.5. Writes bench/results/batch_e2e.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _env import bench_environment  # noqa: E402  (bench/ is on sys.path)

RESULTS = ROOT / "bench" / "results" / "batch_e2e.json"
PORTFOLIO = "Bench"
TARGETS = {"mlp": 5_000, "cnn": 1_000}
QUEUE_PREFIX = "bench-"


def django_setup(args) -> None:
    bench_environment(args.database)
    os.environ["CELERY_BROKER_URL"] = args.broker
    os.environ["CELERY_QUEUE_PREFIX"] = QUEUE_PREFIX
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # a bench database loaded by an older checkout


def users():
    from django.contrib.auth import get_user_model

    model = get_user_model()
    developer, _ = model.objects.get_or_create(username="bench-developer")
    validator, _ = model.objects.get_or_create(username="bench-validator", defaults={"is_superuser": True})
    if not validator.is_superuser:
        validator.is_superuser = True
        validator.save(update_fields=["is_superuser"])
    return developer, validator


def champion_ready(portfolio, kind: str, developer, validator, epochs: int):
    """An approved model of ``kind`` (trained now if there is none), made champion."""
    from scoring.models import ModelVersion
    from scoring.services.registry import model_version_approve, model_version_promote
    from scoring.services.training import model_version_create, model_version_train

    version = (
        ModelVersion.objects.filter(
            portfolio=portfolio,
            kind=kind,
            status__in=[ModelVersion.STATUS_TRAINED, ModelVersion.STATUS_APPROVED, ModelVersion.STATUS_CHAMPION],
        )
        .order_by("-version")
        .first()
    )
    if version is None:
        started = time.perf_counter()
        queued = model_version_create(
            portfolio=portfolio, kind=kind, hyperparameters={"max_epochs": epochs}, requested_by=developer
        )
        version = model_version_train(model_version_id=queued.pk)
        print(f"trained {kind} v{version.version} in {time.perf_counter() - started:.0f}s", flush=True)
    if version.status == ModelVersion.STATUS_TRAINED:
        version = model_version_approve(version=version, user=validator)
    if version.status != ModelVersion.STATUS_CHAMPION:
        version = model_version_promote(
            version=version, user=validator, override_reason="benchmark database of synthetic applicants"
        )
    return version


def workers_start(n: int, log_dir: Path) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = []
    for i in range(n):
        log = (log_dir / f"bench-worker-{i}.log").open("w")
        command = [
            sys.executable, "-m", "celery", "-A", "riskapp", "worker", "-Q", f"{QUEUE_PREFIX}score",
            "--concurrency", "1", "--prefetch-multiplier", "1", "-n", f"bench{i}@%h", "-l", "warning",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        processes.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
    return processes


def workers_stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in processes:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def end_to_end(portfolio, version, n_workers: int) -> dict:
    from django.db import connection

    from scoring.models import BatchRun
    from scoring.services.batch import batch_run_progress, batch_run_start

    log_dir = ROOT / "var" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = workers_start(n_workers, log_dir)
    try:
        time.sleep(8)  # the workers import torch and connect before the clock starts
        run = batch_run_start(portfolio=portfolio, model_version=version, trigger="command")
        started = time.perf_counter()
        last = 0.0
        while True:
            run.refresh_from_db()
            if run.status in (BatchRun.STATUS_DONE, BatchRun.STATUS_FAILED, BatchRun.STATUS_CANCELLED):
                break
            if time.perf_counter() - last > 30:
                p = batch_run_progress(run)
                print(f"  {p['rows_done']:>9,}/{p['rows_total']:,} {p['rows_per_second']:>8,.0f} rows/s", flush=True)
                last = time.perf_counter()
            if any(proc.poll() is not None for proc in processes):
                raise RuntimeError(f"a worker exited; see {log_dir}")
            time.sleep(1)
        wall = time.perf_counter() - started
    finally:
        workers_stop(processes)
    assert run.status == BatchRun.STATUS_DONE, run.error
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT applicant_id) FROM scoring_score WHERE run_id = %s", [run.pk])
        rows, distinct = cursor.fetchone()
    assert rows == distinct == run.rows_total, (rows, distinct, run.rows_total)
    seconds = (run.finished_at - run.started_at).total_seconds()
    return {
        "run": run.pk,
        "rows": run.rows_total,
        "chunks": run.chunks_total,
        "seconds": round(seconds, 1),
        "wall_seconds_incl_enqueue": round(wall, 1),
        "rows_per_second": round(run.rows_total / seconds),
        "scored_exactly_once": True,
    }


def _decide_part(args) -> tuple[int, float]:
    version_id, lo, hi = args
    from django.db import connections

    connections.close_all()
    from scoring.inference import decider_load
    from scoring.models import ModelVersion
    from scoring.services.datasets import portfolio_data

    version = ModelVersion.objects.select_related("portfolio__schema").get(pk=version_id)
    data = portfolio_data(portfolio=version.portfolio, with_history=version.kind == "cnn", id_range=(lo, hi))
    decider = decider_load(version)
    inputs = data.model_inputs(version.kind)
    barrier.wait()  # every process starts deciding at once, data already in memory
    started = time.perf_counter()
    decisions = decider.decide(**inputs)
    return len(decisions.pd), time.perf_counter() - started


def in_memory_limit(version, n_rows: int, n_processes: int) -> dict:
    """The decider alone on rows already in memory, ``n_processes`` at once."""
    from django.db import connections

    from scoring.models import Applicant

    ids = list(
        Applicant.objects.filter(portfolio=version.portfolio).order_by("id").values_list("id", flat=True)[:n_rows]
    )
    parts = np.array_split(np.array(ids), n_processes)
    connections.close_all()
    global barrier
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(n_processes)
    with context.Pool(n_processes) as pool:
        results = pool.map(_decide_part, [(version.pk, int(p[0]), int(p[-1])) for p in parts])
    rows = sum(r for r, _ in results)
    seconds = max(s for _, s in results)
    return {
        "rows": rows,
        "processes": n_processes,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
    }


def lightgbm_peer(version, n_rows: int, threads: int) -> dict:
    """LightGBM + TreeSHAP on the same inputs: static features (MLP) or static +
    the flattened history (CNN), trained on the sample's outcomes."""
    import lightgbm as lgb
    import pandas as pd
    from _lightgbm import BASE_PARAMS, schema_frame  # bench/ is on sys.path

    from scoring.models import Applicant
    from scoring.services.datasets import attach_outcomes, portfolio_data

    ids = list(
        Applicant.objects.filter(portfolio=version.portfolio).order_by("id").values_list("id", flat=True)[:n_rows]
    )
    data = portfolio_data(portfolio=version.portfolio, with_history=version.kind == "cnn", id_range=(ids[0], ids[-1]))
    attach_outcomes(data, portfolio=version.portfolio)
    x = schema_frame(version.schema.definition, data.static)
    if version.kind == "cnn":
        flat = np.where(data.history_mask[:, :, None], data.history, np.nan).reshape(len(data), -1)
        x = pd.concat([x, pd.DataFrame(flat, columns=[f"h{i}" for i in range(flat.shape[1])])], axis=1)
    y = np.nan_to_num(data.defaulted, nan=0.0)
    half = len(x) // 2
    booster = lgb.train(
        {**BASE_PARAMS, "num_threads": threads, "seed": 0}, lgb.Dataset(x.iloc[:half], y[:half]), num_boost_round=300
    )
    started = time.perf_counter()
    booster.predict(x, pred_contrib=True)
    seconds = time.perf_counter() - started
    return {
        "rows": len(x),
        "inputs": x.shape[1],
        "trees": booster.num_trees(),
        "threads": threads,
        "seconds": round(seconds, 2),
        "rows_per_second": round(len(x) / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="riskapp_bench")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kinds", default="mlp,cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-rows", type=int, default=100_000)
    args = parser.parse_args()
    django_setup(args)
    from scoring.models import Portfolio, Score

    portfolio = Portfolio.objects.select_related("schema").filter(name=PORTFOLIO).first()
    if portfolio is None:
        sys.exit(f"No portfolio {PORTFOLIO!r} in {args.database}: run bench/load_synthetic.py first.")
    developer, validator = users()
    # Earlier bench runs' scores would only slow the unique index down.
    Score.objects.filter(portfolio=portfolio).delete()
    # A run of some kinds keeps the other kinds' figures from the last run.
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results |= {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "database": "PostgreSQL",
        "broker": args.broker.split("://")[0],
        "workers": args.workers,
    }
    for kind in args.kinds.split(","):
        version = champion_ready(portfolio, kind, developer, validator, args.epochs)
        print(f"== {kind} v{version.version}: end to end with {args.workers} workers", flush=True)
        e2e = end_to_end(portfolio, version, args.workers)
        print(f"   {e2e['rows']:,} rows in {e2e['seconds']}s = {e2e['rows_per_second']:,} rows/s", flush=True)
        limit = in_memory_limit(version, args.limit_rows, args.workers)
        print(f"   in-memory limit ({limit['processes']} processes): {limit['rows_per_second']:,} rows/s", flush=True)
        peer = lightgbm_peer(version, args.limit_rows, args.workers)
        print(f"   LightGBM + TreeSHAP ({peer['threads']} threads): {peer['rows_per_second']:,} rows/s", flush=True)
        ratio = e2e["rows_per_second"] / limit["rows_per_second"]
        results[kind] = {
            "model_version": version.pk,
            "end_to_end": e2e,
            "in_memory_limit": limit,
            "ratio_end_to_end_to_limit": round(ratio, 3),
            "lightgbm_treeshap": peer,
            "target_rows_per_second": TARGETS[kind],
            "target_met": e2e["rows_per_second"] >= TARGETS[kind],
            "ratio_target_met": ratio >= 0.5,
        }
        print(
            f"   ratio {ratio:.2f} (target >= 0.5); target {TARGETS[kind]:,} rows/s: "
            f"{'met' if e2e['rows_per_second'] >= TARGETS[kind] else 'MISSED'}",
            flush=True,
        )
        Score.objects.filter(run_id=e2e["run"]).delete()  # keep the bench database from growing run after run
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
