"""Bench: where one batch chunk's time goes, step by step (one process, PostgreSQL).

    python bench/batch_breakdown.py [--database riskapp_bench] [--kind mlp] [--rows 5000] [--repeats 5]

The steps of ``score_chunk_run`` on the champion of the "Bench" portfolio that
``bench/load_synthetic.py`` loads: read the chunk's applicants (and histories),
the decider (model forward + exact DeepSHAP explanation), reasons and scaling per
row, the score rows' values, and the COPY into the score table with its commit
(rolled back afterwards, so the bench writes nothing). Best of ``--repeats``
for each step. Writes bench/results/batch_breakdown_<kind>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _env import bench_environment  # noqa: E402  (bench/ is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="riskapp_bench")
    parser.add_argument("--kind", default="mlp")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bench_environment(args.database)
    import django

    django.setup()
    from django.db import transaction

    from scoring.inference import decider_load
    from scoring.models import Applicant, ModelVersion, Portfolio
    from scoring.services.batch import _insert
    from scoring.services.datasets import portfolio_data
    from scoring.services.scoring import rows_from_decisions, score_values

    portfolio = Portfolio.objects.select_related("schema").get(name="Bench")
    version = ModelVersion.objects.filter(portfolio=portfolio, kind=args.kind).order_by("-version").first()
    version.portfolio = portfolio
    ids = list(Applicant.objects.filter(portfolio=portfolio).order_by("id").values_list("id", flat=True)[: args.rows])
    decider = decider_load(version)
    best: dict[str, float] = {}

    def timed(step: str, fn):
        started = time.perf_counter()
        out = fn()
        best[step] = min(best.get(step, float("inf")), time.perf_counter() - started)
        return out

    for _ in range(args.repeats):
        data = timed(
            "read applicants",
            lambda: portfolio_data(portfolio=portfolio, with_history=args.kind == "cnn", id_range=(ids[0], ids[-1])),
        )
        decisions = timed("model + explanation", lambda d=data: decider.decide(**d.model_inputs(version.kind)))
        rows = timed("reasons", lambda d=data, dec=decisions: rows_from_decisions(dec, d, version=version))
        values = timed(
            "score values", lambda d=data, r=rows: score_values(version=version, data=d, features=d.features, rows=r)
        )
        for value in values:
            value["run_id"] = None  # no run: the rows are rolled back anyway
        with transaction.atomic():
            timed("write (COPY)", lambda v=values: _insert(v))
            transaction.set_rollback(True)
    total = sum(best.values())
    print(f"{args.kind}: {len(ids):,} rows, best of {args.repeats}")
    for step, seconds in best.items():
        print(f"  {step:<22} {seconds * 1000:8.1f} ms  {seconds / len(ids) * 1e6:7.1f} µs/row  {seconds / total:5.1%}")
    print(f"  {'total':<22} {total * 1000:8.1f} ms  {len(ids) / total:,.0f} rows/s in one process")
    result = {
        "kind": args.kind,
        "rows": len(ids),
        "steps_ms": {k: round(v * 1000, 1) for k, v in best.items()},
        "rows_per_second_one_process": round(len(ids) / total),
    }
    out = ROOT / "bench" / "results" / f"batch_breakdown_{args.kind}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
