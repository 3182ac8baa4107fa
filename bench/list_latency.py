"""Bench: the cost of row-level permissions on a big list.

    python bench/list_latency.py [--applicants 1000000] [--portfolios 200] [--requests 200]

Recreates the PostgreSQL database `riskapp_list` with N applicants spread over
P portfolios (written by SQL; only the applicant table matters here), an analyst
granted 5 of the portfolios (role "analyst"), and a superuser. Both list
applicants through the API (`GET /api/v1/applicants/`, token authentication,
the permission gate, pagination with its count, the audit event of the list),
on the first page and on pages further in, in alternation. Reports p50/p95 of
each and the ratio analyst / superuser. Target (issue #5): the analyst's p95
within 2x of the superuser's.

In-process (Django's test client over WSGI): the web server is the same for both
users, so it would add the same to each and say nothing about the gate.
"""

from __future__ import annotations

import argparse
import json
import random
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

DB = "riskapp_list"
RESULTS = ROOT / "bench" / "results" / "list_latency.json"
GRANTED = 5


def setup(n_applicants: int, n_portfolios: int) -> tuple[dict[str, str], list[int]]:
    pg = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["dropdb", *pg, "--if-exists", DB], check=True)
    subprocess.run(["createdb", *pg, DB], check=True)
    bench_environment(DB)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from scoring.models import Portfolio
    from scoring.services.access import portfolio_access_grant
    from scoring.services.demo import DEMO_DIR, portfolio_with_schema
    from scoring.services.tokens import api_token_create

    call_command("migrate", verbosity=0)
    first = portfolio_with_schema(name="Book 000", schema_file=DEMO_DIR / "synthetic.schema.json")
    Portfolio.objects.bulk_create(
        [Portfolio(name=f"Book {i:03d}", schema=first.schema) for i in range(1, n_portfolios)]
    )
    ids = list(Portfolio.objects.order_by("id").values_list("id", flat=True))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Round-robin over the portfolios, the way several books fill up side by side.
        cursor.execute(
            """
            INSERT INTO scoring_applicant (portfolio_id, external_id, schema_id, features, protected_attributes,
                                           created_at, updated_at)
            SELECT p.ids[1 + (g %% %s)], 'APP' || lpad(g::text, 9, '0'), %s,
                   jsonb_build_object('income', 20000 + (g * 7919) %% 80000, 'loan_amount', 1000 + (g * 104729) %% 40000,
                                      'duration_months', 12 * (1 + g %% 5), 'region', (ARRAY['north','south','east','west'])[1 + g %% 4]),
                   jsonb_build_object('sex', CASE WHEN g %% 2 = 0 THEN 'F' ELSE 'M' END),
                   now(), now()
            FROM generate_series(0::bigint, %s - 1) AS g, (SELECT %s::bigint[] AS ids) AS p
            """,
            [n_portfolios, first.schema_id, n_applicants, ids],
        )
        cursor.execute("ANALYZE scoring_applicant")
    print(f"{n_applicants:,} applicants in {n_portfolios} portfolios in {time.perf_counter() - started:.0f}s")
    users = get_user_model()
    root = users.objects.create_superuser("bench-root", password=None)
    analyst = users.objects.create_user("bench-analyst", password=None)
    granted = random.Random(7).sample(ids, GRANTED)
    for portfolio in Portfolio.objects.filter(id__in=granted):
        portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    keys = {
        "superuser": api_token_create(user=root, name="list bench")[1],
        "analyst": api_token_create(user=analyst, name="list bench")[1],
    }
    return keys, granted


def measure(keys: dict[str, str], n_requests: int, n_applicants: int, granted: list[int]) -> dict:
    from django.test import Client

    from scoring.models import Applicant

    client = Client()
    expected = {"superuser": n_applicants, "analyst": Applicant.objects.filter(portfolio_id__in=granted).count()}
    timings: dict[str, dict[str, list[float]]] = {user: {"first": [], "deep": []} for user in keys}
    rng = random.Random(3)
    for i in range(n_requests):
        page = "first" if i % 2 == 0 else "deep"
        number = 1 if page == "first" else rng.randint(2, 100)
        for user in rng.sample(list(keys), 2):  # alternate who goes first
            started = time.perf_counter()
            response = client.get(
                f"/api/v1/applicants/?page={number}", HTTP_AUTHORIZATION=f"Token {keys[user]}", HTTP_HOST="127.0.0.1"
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.content[:300]
            body = response.json()
            assert body["count"] == expected[user], (user, body["count"], expected[user])
            if user == "analyst":
                assert {row["portfolio"] for row in body["results"]} <= set(granted)
            timings[user][page].append(elapsed * 1000)
    result: dict = {}
    for user, pages in timings.items():
        every = pages["first"] + pages["deep"]
        result[user] = {
            "rows_visible": expected[user],
            "p50_ms": round(float(np.percentile(every, 50)), 1),
            "p95_ms": round(float(np.percentile(every, 95)), 1),
            "first_page_p95_ms": round(float(np.percentile(pages["first"], 95)), 1),
            "deep_page_p95_ms": round(float(np.percentile(pages["deep"], 95)), 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--applicants", type=int, default=1_000_000)
    parser.add_argument("--portfolios", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    keys, granted = setup(args.applicants, args.portfolios)
    measure(keys, 10, args.applicants, granted)  # warm-up: caches, connections, imports
    result = measure(keys, args.requests, args.applicants, granted)
    ratio = result["analyst"]["p95_ms"] / result["superuser"]["p95_ms"]
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "applicants": args.applicants,
        "portfolios": args.portfolios,
        "analyst_granted_portfolios": GRANTED,
        "requests_per_user": args.requests,
        **result,
        "ratio_p95_analyst_to_superuser": round(ratio, 2),
        "target_ratio_at_most": 2.0,
        "target_met": ratio <= 2.0,
    }
    for user in ("superuser", "analyst"):
        r = result[user]
        print(f"{user:>10}: {r['rows_visible']:>9,} rows visible  p50 {r['p50_ms']:6.1f} ms  p95 {r['p95_ms']:6.1f} ms")
    print(f"ratio p95 analyst / superuser: {ratio:.2f} (target <= 2): {'met' if ratio <= 2 else 'MISSED'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
