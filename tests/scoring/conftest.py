"""Fixtures of the ingestion tests: the demo schemas and portfolios, files on disk,
and a count of every table to prove that a rejected import wrote nothing."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.apps import apps

from scoring.models import AuditEvent, ImportJob, Portfolio
from scoring.services.schemas import schema_register_file

DEMO = Path(__file__).resolve().parents[2] / "scoring" / "demo"
GERMAN_CSV = DEMO / "german_credit.csv"


@pytest.fixture
def german_schema(db):
    return schema_register_file(path=DEMO / "german_credit.schema.json")


@pytest.fixture
def synthetic_schema(db):
    return schema_register_file(path=DEMO / "synthetic.schema.json")


@pytest.fixture
def german_portfolio(german_schema):
    return Portfolio.objects.create(name="german", schema=german_schema)


@pytest.fixture
def synthetic_portfolio(synthetic_schema):
    return Portfolio.objects.create(name="synthetic", schema=synthetic_schema)


@pytest.fixture
def write_csv(tmp_path):
    """Write a header and rows of text cells to a CSV file and return its path.
    ``encoding`` and ``bom`` control the bytes; ``raw`` replaces cells' text with
    bytes (to put invalid UTF-8 in one cell)."""

    def write(name: str, header, rows, *, encoding: str = "utf-8", bom: bool = False) -> Path:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        data = buffer.getvalue().encode(encoding)
        path = tmp_path / name
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
        return path

    return write


def table_counts() -> dict[str, int]:
    """Rows in every table the project knows, except the import jobs themselves and
    the audit log (the attempt is audited, whatever its outcome)."""
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model not in (ImportJob, AuditEvent) and model._meta.managed
    }


@pytest.fixture
def counts():
    return table_counts
