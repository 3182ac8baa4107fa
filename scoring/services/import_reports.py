"""An import job's validation report as a CSV download, so a lender can fix the file
in the tool that made it. Cells are escaped like exports (CSV injection)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from scoring.models import ImportJob
from scoring.services.exports import escape_cell

REPORT_COLUMNS = ["row", "column", "value", "message"]


def import_report_csv_lines(job: ImportJob) -> Iterator[str]:
    """The problems the job's report kept (values already redacted for PII columns)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REPORT_COLUMNS)
    for problem in job.errors:
        writer.writerow([escape_cell(problem.get(column)) for column in REPORT_COLUMNS])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
