"""Bench: generate and load N synthetic applicants with 24-month histories into PostgreSQL.

    python bench/load_synthetic.py [--count 1000000] [--database riskapp_bench]

Drops and recreates the bench database, migrates it, writes the generator's Parquet
files, then imports applicants and history through the validating ingestion service
(the path real files take: validate everything, then COPY + upsert). Reports rows/s
for applicants and history rows. Target: >= 50,000 history rows/s.

Then (``--raw-rows``, default 900,000; 0 skips it) a raw file shaped like the US
small-business loan file (money ``$60,000.00 ``, dates ``28-Feb-97``, odd codes,
unlabelled rows: ``models/synthetic_files.py``) is written as CSV, its schema inferred
from a sample, and imported with ``valid_only``: rows/s of the import (validation and
write) and the process's peak memory are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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
    for kind, path in (("applicants", files.applicants), ("history", files.history)):
        t0 = time.perf_counter()
        job = import_file_run(portfolio=portfolio, kind=kind, path=path)
        seconds = time.perf_counter() - t0
        assert job.status == "succeeded", job.message
        results[kind] = {
            "rows": job.rows_total,
            "seconds": round(seconds, 1),
            "rows_per_second": round(job.rows_total / seconds),
            "created": job.rows_created,
        }
        print(
            f"{kind:>10}: {job.rows_total:>12,} rows in {seconds:7.1f}s = {job.rows_total / seconds:>10,.0f} rows/s",
            flush=True,
        )
    if args.raw_rows:
        results["raw_money_dates"] = _raw_file_import(rows=args.raw_rows, seed=args.seed)
    total = time.perf_counter() - started
    results["total_seconds"] = round(total, 1)
    results["history_target_rows_per_second"] = 50_000
    print(f"generated in {generate_s:.1f}s; total {total:.1f}s; history target >= 50,000 rows/s: "
          f"{'met' if results['history']['rows_per_second'] >= 50_000 else 'MISSED'}")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "load_synthetic.json").write_text(json.dumps(results, indent=2) + "\n")


def _raw_file_import(*, rows: int, seed: int) -> dict:
    """Infer, register and import a raw SBA-shaped file; rows/s and peak memory."""
    import resource

    from django.conf import settings

    from models.synthetic_files import sba_like_frame
    from scoring.models import Portfolio
    from scoring.services.ingestion import import_file_run
    from scoring.services.ingestion.inference import schema_infer
    from scoring.services.schemas import schema_register

    path = Path(settings.VAR_DIR) / "bench-load" / "sba_like.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    sba_like_frame(rows, seed=seed).to_csv(path, index=False)
    t0 = time.perf_counter()
    proposal = schema_infer(path=path, name="bench_sba")
    infer_s = time.perf_counter() - t0
    schema = schema_register(document=proposal["schema"])
    portfolio = Portfolio.objects.create(name="Bench raw", schema=schema)
    t0 = time.perf_counter()
    job = import_file_run(portfolio=portfolio, kind="applicants", path=path, valid_only=True)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert job.status == "succeeded", job.message
    print(
        f"raw money/date file: {job.rows_total:,} rows ({job.rows_invalid:,} invalid, {job.warning_count:,} warnings) "
        f"in {seconds:.1f}s = {job.rows_total / seconds:,.0f} rows/s; schema inferred in {infer_s:.1f}s; "
        f"peak RSS of this process {peak_mb:,.0f} MB",
        flush=True,
    )
    return {
        "rows": job.rows_total, "invalid": job.rows_invalid, "created": job.rows_created,
        "seconds": round(seconds, 1), "rows_per_second": round(job.rows_total / seconds),
        "infer_seconds": round(infer_s, 1), "peak_rss_mb": round(peak_mb),
        "file_mb": round(path.stat().st_size / 2**20, 1),
    }  # fmt: skip


if __name__ == "__main__":
    main()
