"""Writing seeded synthetic portfolios to files that the ingestion service imports.

Going through files (rather than inserting directly) means the synthetic data is
validated and loaded by exactly the path real lenders' files take.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from models.synthetic import generate


@dataclass
class SyntheticFiles:
    applicants: Path
    history: Path
    applicants_rows: int
    history_rows: int
    seconds: float


def synthetic_files_write(
    *,
    directory: Path,
    count: int,
    seed: int,
    sex_income_gap: float = 0.0,
    id_prefix: str = "SYN",
    progress: Callable[[int, int], None] | None = None,
) -> SyntheticFiles:
    """Write ``applicants.parquet`` and ``history.parquet`` for ``count`` applicants."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    applicants_path, history_path = directory / "applicants.parquet", directory / "history.parquet"
    app_writer = hist_writer = None
    done = history_rows = 0
    try:
        for block in generate(count, seed=seed, sex_income_gap=sex_income_gap, id_prefix=id_prefix):
            app_table = pa.Table.from_pandas(block.applicants, preserve_index=False)
            hist_table = pa.Table.from_pandas(block.history_frame(), preserve_index=False)
            if app_writer is None:
                app_writer = pq.ParquetWriter(applicants_path, app_table.schema)
                hist_writer = pq.ParquetWriter(history_path, hist_table.schema)
            assert app_writer is not None and hist_writer is not None
            app_writer.write_table(app_table)
            hist_writer.write_table(hist_table)
            done += len(block.applicants)
            history_rows += hist_table.num_rows
            if progress:
                progress(done, count)
    finally:
        for writer in (app_writer, hist_writer):
            if writer is not None:
                writer.close()
    return SyntheticFiles(applicants_path, history_path, done, history_rows, time.perf_counter() - started)


def synthetic_hard_file_write(*, directory: Path, count: int, seed: int) -> SyntheticFiles:
    """Write ``applicants.parquet`` of the hard mode (``models.synthetic.generate_hard``:
    no history; the newest applications without an outcome)."""
    from models.synthetic import generate_hard

    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "applicants.parquet"
    frame = generate_hard(count, seed=seed)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    tmp.replace(path)
    return SyntheticFiles(path, path, len(frame), 0, time.perf_counter() - started)
