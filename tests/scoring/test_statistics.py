"""Planner statistics are refreshed at the end of every import (issue 15)."""

from __future__ import annotations

from django.db import connection

from models.synthetic import generate_all
from scoring.models import ImportJob
from scoring.services.ingestion import import_file_run


def analyzed_rows(table: str) -> int | None:
    """The row count the planner's statistics hold for ``table`` (None: never analysed)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
            value = cursor.fetchone()[0]
            return None if value < 0 else int(value)
        cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if cursor.fetchone() is None:
            return None
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s", [table])
        row = cursor.fetchone()
        return None if row is None else int(row[0].split()[0])


def test_an_import_leaves_the_planner_statistics_of_what_it_wrote(synthetic_portfolio, tmp_path):
    block = generate_all(150, seed=4)
    applicants, history = tmp_path / "applicants.csv", tmp_path / "history.csv"
    block.applicants.to_csv(applicants, index=False)
    block.history_frame().to_csv(history, index=False)
    # Statistics outlive the rolled-back transactions of earlier tests on PostgreSQL: start
    # from what the planner knows of the tables as this test sees them (empty).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE scoring_repaymentmonth")
    assert analyzed_rows("scoring_repaymentmonth") in (None, 0)
    for kind, path in (("applicants", applicants), ("history", history)):
        job = import_file_run(portfolio=synthetic_portfolio, kind=kind, path=path)
        assert job.status == ImportJob.STATUS_SUCCEEDED, job.errors
    assert analyzed_rows("scoring_applicant") == 150
    assert analyzed_rows("scoring_repaymentmonth") == 150 * 24


def test_scores_keep_their_foreign_keys_without_the_redundant_single_column_indexes(db):
    constraints = connection.introspection.get_constraints(connection.cursor(), "scoring_score")
    indexed = [c["columns"] for c in constraints.values() if c["index"] or c["unique"]]
    for column in ("portfolio_id", "applicant_id", "run_id"):
        assert [column] not in indexed, f"{column} has an index of its own"
        assert any(cols[0] == column for cols in indexed), f"no index leads with {column}"
    if connection.vendor == "postgresql":  # SQLite's introspection does not name its foreign keys
        foreign = {c["columns"][0] for c in constraints.values() if c["foreign_key"]}
        assert {"portfolio_id", "applicant_id", "run_id", "model_version_id"} <= foreign
