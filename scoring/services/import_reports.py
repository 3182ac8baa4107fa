"""An import job's validation report as a CSV download, so a lender can fix the file
in the tool that made it. Cells are escaped like exports (CSV injection).

One line per example of each (column, problem) pair of the whole file, with the
pair's count: a million money errors take a few lines and the rare problem is not
hidden behind them. Jobs reported before the summary existed list their errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from scoring.models import ImportJob
from scoring.services.exports import escape_cell

REPORT_COLUMNS = ["severity", "column", "message", "count", "row", "value"]


def _report_lines(job: ImportJob) -> Iterator[dict]:
    if not job.summary:
        for problem in job.errors:
            yield {**problem, "severity": "error", "count": 1}
        return
    for entry in job.summary:
        for example in entry["examples"] or [{"row": None, "value": None}]:
            yield {**entry, "message": entry["problem"], "row": example["row"], "value": example["value"]}


def import_report_csv_lines(job: ImportJob) -> Iterator[str]:
    """The report's lines (values of PII columns shown by their shape only)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REPORT_COLUMNS)
    for problem in _report_lines(job):
        writer.writerow([escape_cell(problem.get(column)) for column in REPORT_COLUMNS])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
