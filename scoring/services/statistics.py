"""Planner statistics after bulk writes.

The database's planner picks an index by what it believes a table holds. After
an import of millions of rows into a table it last measured empty (and with
autovacuum off, as on some servers, it never measures again), PostgreSQL reads
a CNN chunk's history through the whole portfolio's ``portfolio_id`` index
instead of the (applicant, month) one: 20 ms a chunk at 50,000 applicants, 208
ms at 200,000, growing with the book (issue 15). ANALYZE of the touched tables
at the end of each import keeps the plans index-bound as portfolios grow
(bench/history_read.py measures it). It samples a fixed number of rows, so it
costs well under a second whatever the table's size.
"""

from __future__ import annotations

from django.db import connection

from scoring.models import Applicant, ApplicantPII, Outcome, RepaymentMonth

# What each import kind writes (ImportJob.kind).
TOUCHED = {
    "applicants": (Applicant, ApplicantPII),
    "history": (RepaymentMonth,),
    "outcomes": (Outcome,),
}


def table_statistics_refresh(*, kind: str) -> list[str]:
    """ANALYZE the tables an import of ``kind`` wrote; returns their names. Run it
    after the import committed: statistics of rows no one can see yet help no one."""
    tables = [model._meta.db_table for model in TOUCHED.get(kind, ())]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return tables
