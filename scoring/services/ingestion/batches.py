"""Record batches from origination systems: applications and outcomes as JSON.

A batch goes through exactly the pipeline of a file (the same validation, report,
writers and audit event): its records are written as a CSV in a private temporary
folder, imported all-or-nothing, and the folder is deleted. Records are upserted by
their external id, so sending a batch again changes nothing (counted unchanged).
Report rows count as in a file: record 1 is row 2.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

from scoring.models import DatasetSchema, ImportJob, Portfolio
from scoring.services.errors import ServiceError

from .run import import_file_run
from .validation import OUTCOME_COLUMNS

MAX_RECORDS = 10_000


class RecordBatchError(ServiceError):
    """The batch is not a list of records."""

    code = "invalid_records"


class RecordsRejected(ServiceError):
    """Some records do not fit the schema: nothing of the batch was written. The
    details hold the report in the format of a file's (record 1 is row 2)."""

    code = "invalid"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _columns(portfolio: Portfolio, kind: str, records: list[dict]) -> list[str]:
    if kind == ImportJob.KIND_OUTCOMES:
        declared = list(OUTCOME_COLUMNS)
    else:
        declared = [c["name"] for c in portfolio.schema.definition["columns"] if c["role"] != DatasetSchema.ROLE_IGNORE]
    extra = sorted({key for record in records for key in record} - set(declared))
    return declared + extra  # an undeclared key is reported like an undeclared column


def records_import(*, portfolio: Portfolio, kind: str, records, created_by=None) -> ImportJob:
    """Validate and write a batch of application or outcome records (all or nothing)."""
    if kind not in (ImportJob.KIND_APPLICANTS, ImportJob.KIND_OUTCOMES):
        raise RecordBatchError(f"Records are applicants or outcomes, not {kind!r}.")
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise RecordBatchError("'records' must be a non-empty list of objects.")
    if len(records) > MAX_RECORDS:
        raise RecordBatchError(f"At most {MAX_RECORDS:,} records a batch; send a file for more.")
    columns = _columns(portfolio, kind, records)
    folder = Path(tempfile.mkdtemp(prefix="records-"))  # mode 0700: the records may hold PII
    try:
        path = folder / f"{kind}.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for record in records:
                writer.writerow([_cell(record.get(name)) for name in columns])
        job = import_file_run(
            portfolio=portfolio, kind=kind, path=path, created_by=created_by, file_name=f"api records: {kind}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if job.status != ImportJob.STATUS_SUCCEEDED:
        raise RecordsRejected(
            f"{job.error_count:,} problem(s) in the records; nothing was written (import job {job.pk}).",
            details={"records": job.errors, "summary": job.summary, "import_job": job.pk},
        )
    return job
