"""Bench: generate and load N synthetic applicants with 24-month histories into PostgreSQL.

    python bench/load_synthetic.py [--count 1000000] [--database riskapp_bench]

Drops and recreates the bench database, migrates it, writes the generator's Parquet
files, then imports applicants and history through the validating ingestion service
(the path real files take: validate everything, then COPY + upsert). Reports rows/s
for applicants and history rows. Target: >= 50,000 history rows/s.
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
    total = time.perf_counter() - started
    results["total_seconds"] = round(total, 1)
    results["history_target_rows_per_second"] = 50_000
    print(f"generated in {generate_s:.1f}s; total {total:.1f}s; history target >= 50,000 rows/s: "
          f"{'met' if results['history']['rows_per_second'] >= 50_000 else 'MISSED'}")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "load_synthetic.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
