"""Bench: batch scoring scale-out, one score worker process against two, same broker.

    python bench/scale_out.py [--count 100000] [--chunk-size 5000] [--broker redis://127.0.0.1:6379/11]

Recreates the PostgreSQL database `riskapp_scale`, imports N synthetic applicants
(the generator's Parquet file through the validating ingestion service), trains an MLP
champion (developer trains, validator approves and promotes), then scores the whole
portfolio twice through real Celery workers started with docker/start/worker (the
container entry point), all consuming one `score` queue on the broker:

  1. one worker process (pool of 1)
  2. two worker processes (pool of 1 each)

For each run: rows/s from the first chunk claimed to the run marked done (database
timestamps), the wall time from enqueue to done, and the check that every applicant
has exactly one score row (count of Score rows == count of distinct applicants ==
applicants). The ratio of the two rates is the scale-out factor. On a machine with
few cores the workers share them with PostgreSQL and this process: the JSON records
the core count and load averages, so the factor is read against them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _env import bench_environment  # noqa: E402  (bench/ is on sys.path)

DB = "riskapp_scale"


def setup(count: int, seed: int):
    pg = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["dropdb", *pg, "--if-exists", DB], check=True)
    subprocess.run(["createdb", *pg, DB], check=True)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from scoring.services.access import portfolio_access_grant
    from scoring.services.demo import DEMO_DIR, portfolio_with_schema
    from scoring.services.ingestion import import_file_run
    from scoring.services.registry import model_version_approve, model_version_promote
    from scoring.services.synthetic import synthetic_files_write
    from scoring.services.training import model_version_create, model_version_train

    call_command("migrate", verbosity=0)
    portfolio = portfolio_with_schema(name="Scale-out bench", schema_file=DEMO_DIR / "synthetic.schema.json")
    files = synthetic_files_write(directory=Path(settings.VAR_DIR) / "bench-scale", count=count, seed=seed)
    started = time.perf_counter()
    job = import_file_run(portfolio=portfolio, kind="applicants", path=files.applicants)
    assert job.status == "succeeded", job.message
    print(f"imported {job.rows_total:,} applicants in {time.perf_counter() - started:.1f}s", flush=True)

    users = get_user_model().objects
    developer = users.create_user(username="developer", password=uuid.uuid4().hex)
    validator = users.create_user(username="validator", password=uuid.uuid4().hex)
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    started = time.perf_counter()
    version = model_version_create(
        portfolio=portfolio, kind="mlp", requested_by=developer, hyperparameters={"max_epochs": 3, "batch_size": 1024}
    )
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=validator)
    # Synthetic people: the monitoring gate's fairness verdict is not what this bench measures.
    model_version_promote(version=version, user=validator, override_reason="benchmark of synthetic applicants")
    print(f"trained the MLP champion (v{version.version}) in {time.perf_counter() - started:.1f}s", flush=True)
    return portfolio


class Worker:
    """A score worker started by the container entry point, docker/start/worker."""

    def __init__(self, name: str, log_dir: Path):
        self.log_path = log_dir / f"{name}.log"
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "WORKER_QUEUES": "score",
            "WORKER_CONCURRENCY": "1",
            "WORKER_NAME": name,
            "TORCH_NUM_THREADS": "1",
        }
        self.process = subprocess.Popen(
            [str(ROOT / "docker/start/worker")], env=env, cwd=ROOT,
            stdout=self.log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log_path.read_text()}")
            if " ready." in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def score_with(portfolio, *, workers: int, chunk_size: int, log_dir: Path) -> dict:
    from django.db.models import Count

    from scoring.models import Applicant, BatchRun, Score
    from scoring.services.batch import batch_run_start

    started_workers = [Worker(f"bench{workers}x{i}", log_dir) for i in range(workers)]
    try:
        for worker in started_workers:
            worker.wait_ready()
        load_before = os.getloadavg()
        enqueued = time.perf_counter()
        run = batch_run_start(portfolio=portfolio, chunk_size=chunk_size, trigger="command")
        while True:
            run.refresh_from_db()
            if run.status in (BatchRun.STATUS_DONE, BatchRun.STATUS_FAILED, BatchRun.STATUS_CANCELLED):
                break
            time.sleep(0.5)
        wall = time.perf_counter() - enqueued
        load_after = os.getloadavg()
    finally:
        for worker in started_workers:
            worker.stop()
    assert run.status == BatchRun.STATUS_DONE, run.status
    applicants = Applicant.objects.filter(portfolio=portfolio).count()
    scores = Score.objects.filter(run=run)
    rows = scores.count()
    distinct = scores.values("applicant_id").distinct().count()
    duplicated = scores.values("applicant_id").annotate(n=Count("id")).filter(n__gt=1).count()
    seconds = (run.finished_at - run.started_at).total_seconds()
    result = {
        "workers": workers,
        "run_id": run.pk,
        "chunks": run.chunks_total,
        "rows_total": run.rows_total,
        "score_rows": rows,
        "distinct_applicants_scored": distinct,
        "applicants_missing": applicants - distinct,
        "applicants_duplicated": duplicated,
        "seconds": round(seconds, 2),
        "rows_per_second": round(run.rows_total / seconds),
        "wall_seconds_from_enqueue": round(wall, 2),
        "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    print(
        f"{workers} worker(s): {run.rows_total:,} rows in {seconds:6.1f}s = {result['rows_per_second']:>7,} rows/s; "
        f"score rows {rows:,}, distinct {distinct:,}, missing {result['applicants_missing']}, duplicated {duplicated}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()

    bench_environment(DB)  # the database URL and a PII key for synthetic people (the workers inherit both)
    os.environ["CELERY_BROKER_URL"] = args.broker
    # Own queue names, so a service or test run on the same broker never takes these messages.
    os.environ["CELERY_QUEUE_PREFIX"] = f"bench-scale-{os.getpid()}-"
    # Own artifact folder: the fresh database numbers the portfolio 1, like every other fresh
    # database on this checkout, and must not overwrite their var/artifacts/portfolio-1 files.
    var_dir = Path(os.environ.get("VAR_DIR") or ROOT / "var")
    os.environ["ARTIFACT_DIR"] = str(var_dir / "bench-scale" / "artifacts")

    portfolio = setup(args.count, args.seed)
    from django.conf import settings

    log_dir = Path(settings.VAR_DIR) / "bench-scale" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = [score_with(portfolio, workers=n, chunk_size=args.chunk_size, log_dir=log_dir) for n in (1, 2)]

    from riskapp.celery import app

    app.control.purge()  # the workers' start-up recovery messages, scheduled minutes ahead
    one, two = runs
    ratio = two["rows_per_second"] / one["rows_per_second"]
    results = {
        "count": args.count,
        "chunk_size": args.chunk_size,
        "broker": args.broker.split("://")[0],
        "database": "postgresql",
        "model": "mlp",
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "two_over_one": round(ratio, 2),
        "every_applicant_scored_exactly_once": all(
            r["applicants_missing"] == 0 and r["applicants_duplicated"] == 0 and r["score_rows"] == args.count
            for r in runs
        ),
    }
    print(f"scale-out: 2 workers / 1 worker = {ratio:.2f}x on {os.cpu_count()} cores")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale_out.json").write_text(json.dumps(results, indent=2) + "\n")
    if not results["every_applicant_scored_exactly_once"]:
        sys.exit("an applicant was missed or scored twice")


if __name__ == "__main__":
    main()
