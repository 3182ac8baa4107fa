"""Exports of scores to CSV and Parquet, safe to open in a spreadsheet.

Text cells beginning with ``=``, ``+``, ``-``, ``@``, tab or carriage return are
prefixed with a single quote so a spreadsheet shows them as text instead of
running them as formulas (CSV injection, OWASP). Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files import File

from scoring.models import BatchRun, Score
from scoring.storage import EXPORTS, storage

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ["score_id", "applicant_external_id", "model_version", "pd", "score", "decision", "reason_1", "reason_2",
           "reason_3", "reason_4", "input_hash", "created_at"]  # fmt: skip
BATCH = 5000


def escape_cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _rows(run: BatchRun) -> Iterator[list]:
    scores = (
        Score.objects.filter(run=run, is_shadow=False)
        .select_related("applicant", "model_version")
        .order_by("applicant_id")
        .only(
            "id",
            "pd",
            "score",
            "decision",
            "reasons",
            "input_hash",
            "created_at",
            "applicant__external_id",
            "model_version__version",
            "model_version__kind",
        )
    )
    for s in scores.iterator(chunk_size=BATCH):
        reasons = [f"{r['code']} {r['text']}" for r in s.reasons[:4]] + [""] * (4 - min(len(s.reasons), 4))
        row = [s.pk, s.applicant.external_id if s.applicant else "", f"{s.model_version.kind} v{s.model_version.version}",
               s.pd, s.score, s.decision, *reasons, s.input_hash, s.created_at.isoformat()]  # fmt: skip
        yield [escape_cell(v) for v in row]


def _audit(run: BatchRun, *, actor, request, rows: int, file_format: str, complete: bool) -> None:
    from scoring.audit import audit_record

    audit_record(
        action="export.create", actor=actor, request=request, portfolio_id=run.portfolio_id, object_type="batchrun",
        object_ids=[run.pk], details={"rows": rows, "format": file_format}, outcome="success" if complete else "failure",
    )  # fmt: skip


def export_csv_lines(run: BatchRun, *, actor=None, request=None) -> Iterator[str]:
    """The run's scores as CSV text, streamed line by line. Audited once the stream
    ends, with the rows actually sent (a client that disconnects early: ``failure``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    rows, complete = 0, False
    try:
        for row in _rows(run):
            writer.writerow(row)
            rows += 1
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
        complete = True
    finally:
        _audit(run, actor=actor, request=request, rows=rows, file_format="csv", complete=complete)


def export_parquet(run: BatchRun, path: Path | IO[bytes], *, actor=None, request=None) -> int:
    """Write the run's scores to a Parquet file (a path or a binary file object); returns the row count."""
    schema = pa.schema(
        [
            ("score_id", pa.int64()),
            ("applicant_external_id", pa.string()),
            ("model_version", pa.string()),
            ("pd", pa.float64()),
            ("score", pa.float64()),
            ("decision", pa.string()),
            ("reason_1", pa.string()),
            ("reason_2", pa.string()),
            ("reason_3", pa.string()),
            ("reason_4", pa.string()),
            ("input_hash", pa.string()),
            ("created_at", pa.string()),
        ]
    )
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[list] = []
        for row in _rows(run):
            batch.append(row)
            if len(batch) == BATCH:
                writer.write_table(
                    pa.Table.from_pylist([dict(zip(COLUMNS, r, strict=True)) for r in batch], schema=schema)
                )
                count += len(batch)
                batch = []
        if batch or count == 0:
            writer.write_table(pa.Table.from_pylist([dict(zip(COLUMNS, r, strict=True)) for r in batch], schema=schema))
            count += len(batch)
    _audit(run, actor=actor, request=request, rows=count, file_format="parquet", complete=True)
    return count


def export_parquet_store(run: BatchRun, *, actor=None, request=None) -> str:
    """Write the run's scores as Parquet into the exports storage; return the object's
    name, which :func:`export_stream` sends and then deletes. Built in a temporary file
    (spilled to the system's temporary folder past 32 MB, deleted on close), never in a
    folder of the service."""
    with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as buffer:
        export_parquet(run, buffer, actor=actor, request=request)
        buffer.seek(0)
        return storage(EXPORTS).save(f"run-{run.pk}-{uuid.uuid4().hex}.parquet", File(buffer))


class export_stream:
    """The bytes of an export, in chunks; the object is deleted when the response is
    closed, whether the stream was read to its end, cut short by the client, or never
    started (a generator's ``finally`` would not run then). An export holds applicants'
    ids and scores: no copy stays behind in the storage (an erasure has none to find)."""

    def __init__(self, name: str, *, chunk_size: int = 1 << 20):
        self.name, self.chunk_size = name, chunk_size
        self.store = storage(EXPORTS)
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        with self.store.open(self.name, "rb") as source:
            while chunk := source.read(self.chunk_size):
                yield chunk
        self.close()  # read to its end: gone at once, not only when the server closes the response

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.store.delete(self.name)
