"""Bench: generate and load N synthetic applicants with 24-month histories into PostgreSQL.

    python bench/load_synthetic.py [--count 1000000] [--database riskapp_bench]

Drops and recreates the bench database, migrates it, writes the generator's Parquet
files, then imports applicants and history through the validating ingestion service
(the path real files take: validate everything, then COPY + upsert). Reports rows/s
for applicants and history rows, with the CPU seconds per 100k rows of this process
and of its PostgreSQL backend (read from /proc: the server runs on this machine) and
the load average, since wall-clock rows/s on a shared machine say little alone.
Target: >= 50,000 history rows/s.

Then (``--raw-rows``, default 900,000; 0 skips it) a raw file shaped like the US
small-business loan file (money ``$60,000.00 ``, dates ``28-Feb-97``, odd codes,
unlabelled rows: ``models/synthetic_files.py``) is written as CSV, its schema inferred
from a sample, and imported with ``valid_only``: rows/s of the import (validation and
write) and the process's peak memory are reported (the file is written by a child
process, so the peak is the import's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class CpuClock:
    """CPU seconds of this process (all threads) and of the PostgreSQL backend
    serving Django's connection, between ``start`` and ``stop``."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.backend = cursor.fetchone()[0]

    def _backend(self) -> float | None:
        try:
            fields = Path(f"/proc/{self.backend}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a server on another machine
            return None
        return (int(fields[11]) + int(fields[12])) / self.TICK

    @staticmethod
    def _client() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def start(self) -> None:
        self.client0, self.backend0 = self._client(), self._backend()

    def stop(self, rows: int) -> dict:
        client, backend = self._client() - self.client0, self._backend()
        per = 100_000 / max(rows, 1)
        result = {"client_cpu_s_per_100k": round(client * per, 3), "load_average_1m": round(os.getloadavg()[0], 2)}
        if backend is not None and self.backend0 is not None:
            result["backend_cpu_s_per_100k"] = round((backend - self.backend0) * per, 3)
        return result

    @staticmethod
    def line(figures: dict) -> str:
        backend = figures.get("backend_cpu_s_per_100k")
        return (
            f"CPU per 100k rows: client {figures['client_cpu_s_per_100k']:.2f}s"
            + (f", PostgreSQL backend {backend:.2f}s" if backend is not None else "")
            + f"; load average {figures['load_average_1m']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database", default="riskapp_bench")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--raw-rows", type=int, default=900_000)
    args = parser.parse_args()

    pg = ["-h", args.host, "-U", "postgres"]
    subprocess.run(["dropdb", *pg, "--if-exists", args.database], check=True)
    subprocess.run(["createdb", *pg, args.database], check=True)
    os.environ["DATABASE_URL"] = f"postgres://postgres@{args.host}:5432/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskapp.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from scoring.services.demo import DEMO_DIR, portfolio_with_schema
    from scoring.services.ingestion import import_file_run
    from scoring.services.synthetic import synthetic_files_write

    portfolio = portfolio_with_schema(name="Bench", schema_file=DEMO_DIR / "synthetic.schema.json")
    started = time.perf_counter()
    files = synthetic_files_write(directory=Path(settings.VAR_DIR) / "bench-load", count=args.count, seed=args.seed)
    generate_s = time.perf_counter() - started
    results = {"count": args.count, "generate_seconds": round(generate_s, 1)}
    clock = CpuClock()
    for kind, path in (("applicants", files.applicants), ("history", files.history)):
        clock.start()
        t0 = time.perf_counter()
        job = import_file_run(portfolio=portfolio, kind=kind, path=path)
        seconds = time.perf_counter() - t0
        cpu = clock.stop(job.rows_total)
        assert job.status == "succeeded", job.message
        results[kind] = {
            "rows": job.rows_total,
            "seconds": round(seconds, 1),
            "rows_per_second": round(job.rows_total / seconds),
            "created": job.rows_created,
            **cpu,
        }
        print(
            f"{kind:>10}: {job.rows_total:>12,} rows in {seconds:7.1f}s = {job.rows_total / seconds:>10,.0f} rows/s; "
            + clock.line(cpu),
            flush=True,
        )
    if args.raw_rows:
        results["raw_money_dates"] = _raw_file_import(rows=args.raw_rows, seed=args.seed, clock=clock)
    total = time.perf_counter() - started
    results["total_seconds"] = round(total, 1)
    results["history_target_rows_per_second"] = 50_000
    print(f"generated in {generate_s:.1f}s; total {total:.1f}s; history target >= 50,000 rows/s: "
          f"{'met' if results['history']['rows_per_second'] >= 50_000 else 'MISSED'}")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "load_synthetic.json").write_text(json.dumps(results, indent=2) + "\n")


def _raw_file_write(path: Path, rows: int, seed: int) -> None:
    from models.synthetic_files import sba_like_frame

    sba_like_frame(rows, seed=seed).to_csv(path, index=False)


def _raw_file_import(*, rows: int, seed: int, clock: CpuClock) -> dict:
    """Infer, register and import a raw SBA-shaped file; rows/s and peak memory."""
    import multiprocessing

    from django.conf import settings

    from scoring.models import Portfolio
    from scoring.services.ingestion import import_file_run
    from scoring.services.ingestion.inference import schema_infer
    from scoring.services.schemas import schema_register

    path = Path(settings.VAR_DIR) / "bench-load" / "sba_like.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written by a child process, so that this process's peak RSS is the import's.
    writer = multiprocessing.get_context("spawn").Process(target=_raw_file_write, args=(path, rows, seed))
    writer.start()
    writer.join()
    assert writer.exitcode == 0, writer.exitcode
    t0 = time.perf_counter()
    proposal = schema_infer(path=path, name="bench_sba")
    infer_s = time.perf_counter() - t0
    schema = schema_register(document=proposal["schema"])
    portfolio = Portfolio.objects.create(name="Bench raw", schema=schema)
    clock.start()
    t0 = time.perf_counter()
    job = import_file_run(portfolio=portfolio, kind="applicants", path=path, valid_only=True)
    seconds = time.perf_counter() - t0
    cpu = clock.stop(job.rows_total)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert job.status == "succeeded", job.message
    print(
        f"raw money/date file: {job.rows_total:,} rows ({job.rows_invalid:,} invalid, {job.warning_count:,} warnings) "
        f"in {seconds:.1f}s = {job.rows_total / seconds:,.0f} rows/s; schema inferred in {infer_s:.1f}s; "
        f"peak RSS of this process {peak_mb:,.0f} MB; " + clock.line(cpu),
        flush=True,
    )
    return {
        "rows": job.rows_total, "invalid": job.rows_invalid, "created": job.rows_created,
        "seconds": round(seconds, 1), "rows_per_second": round(job.rows_total / seconds),
        "infer_seconds": round(infer_s, 1), "peak_rss_mb": round(peak_mb),
        "file_mb": round(path.stat().st_size / 2**20, 1), **cpu,
    }  # fmt: skip


if __name__ == "__main__":
    main()
