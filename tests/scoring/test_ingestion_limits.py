"""Limits enforced while a file is read: small compressed files that expand without bound
are refused after reading one limit's worth, with the worker's memory bounded."""

import gzip
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scoring.models import ImportJob
from scoring.services.ingestion import import_file_run, import_job_create
from tests.conftest import wait_for

from .test_ingestion import synthetic_rows

MB = 1 << 20


def parquet_bomb(path: Path, rows: int = 300) -> Path:
    """~15 KB on disk: 300 rows of a 1 MB cell, zstd."""
    header, data = synthetic_rows(1)
    columns = {name: [data[0][i]] * rows for i, name in enumerate(header)}
    columns["applicant_id"] = [f"B{i}" for i in range(rows)]
    columns["full_name"] = ["A" * MB] * rows
    pq.write_table(pa.table(columns), path, compression="zstd", use_dictionary=False)
    return path


def csv_gz_bomb(path: Path, megabytes: int = 300) -> Path:
    """~300 KB on disk: a header, then one line of ``megabytes`` MB."""
    header, data = synthetic_rows(1)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write((",".join(header) + "\n" + ",".join(data[0][:-1]) + ",").encode())
        block = b"B" * MB
        for _ in range(megabytes):
            out.write(block)
        out.write(b"\n")
    return path


@pytest.mark.django_db
def test_a_parquet_bomb_is_refused_from_its_metadata(synthetic_portfolio, tmp_path):
    path = parquet_bomb(tmp_path / "bomb.parquet")
    assert path.stat().st_size < 40_000
    job = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)
    assert job.status == ImportJob.STATUS_REJECTED
    (error,) = job.errors
    assert error["column"] == "full_name" and "IMPORT_MAX_CELL_CHARS" in error["message"]


@pytest.mark.django_db
def test_a_csv_gz_with_one_huge_line_is_refused_while_streaming(synthetic_portfolio, tmp_path, settings):
    settings.IMPORT_MAX_LINE_KB = 1024
    path = csv_gz_bomb(tmp_path / "bomb.csv.gz", megabytes=20)
    job = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)
    assert job.status == ImportJob.STATUS_REJECTED
    assert any("IMPORT_MAX_LINE_KB" in e["message"] for e in job.errors), job.errors


@pytest.mark.django_db
def test_decompressed_bytes_and_cell_length_have_limits(synthetic_portfolio, tmp_path, settings, write_csv):
    header, rows = synthetic_rows(500)
    path = tmp_path / "big.csv.gz"
    text = ",".join(header) + "\n" + "\n".join(",".join(f'"{c}"' for c in r) for r in rows * 16) + "\n"
    assert len(text) > 1.5 * MB
    with gzip.open(path, "wt") as out:
        out.write(text)
    settings.IMPORT_MAX_DECOMPRESSED_MB = 1
    job = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)
    assert job.status == ImportJob.STATUS_REJECTED and "IMPORT_MAX_DECOMPRESSED_MB" in job.errors[-1]["message"]

    settings.IMPORT_MAX_DECOMPRESSED_MB = 100
    settings.IMPORT_MAX_CELL_CHARS = 1000
    header, rows = synthetic_rows(3)
    rows[1][header.index("address")] = "x" * 5000
    job = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=write_csv("long.csv", header, rows))
    assert job.status == ImportJob.STATUS_REJECTED
    (error,) = job.errors
    assert (error["row"], error["column"]) == (3, "address") and "IMPORT_MAX_CELL_CHARS" in error["message"]


def _peak_rss_bytes(group: int) -> int:
    """The largest peak resident size (VmHWM) of the processes of a process group."""
    peak = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) * 1024)
    return peak


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
def test_both_bombs_are_rejected_by_a_real_worker_under_one_gigabyte(celery_worker, tmp_path):
    from scoring.services.demo import DEMO_DIR, portfolio_with_schema
    from scoring.tasks import import_file

    portfolio = portfolio_with_schema(name="Bombs", schema_file=DEMO_DIR / "synthetic.schema.json")
    jobs = []
    for path in (parquet_bomb(tmp_path / "bomb.parquet"), csv_gz_bomb(tmp_path / "bomb.csv.gz")):
        job = import_job_create(portfolio=portfolio, kind="applicants", path=path)
        import_file.delay(job.pk, str(path))
        jobs.append(job)

    def finished():
        return not ImportJob.objects.filter(
            pk__in=[j.pk for j in jobs], status__in=[ImportJob.STATUS_PENDING, ImportJob.STATUS_RUNNING]
        ).exists()

    wait_for(finished, timeout=240, message=f"the bomb imports; worker log:\n{celery_worker.log()}")
    peak = _peak_rss_bytes(celery_worker.process.pid)
    for job in jobs:
        job.refresh_from_db()
        assert job.status == ImportJob.STATUS_REJECTED, job.message
    print(f"\nworker peak RSS {peak / MB:,.0f} MB")
    assert 0 < peak < 1024 * MB, f"the worker's peak RSS was {peak / MB:,.0f} MB"
    shutil.rmtree(tmp_path, ignore_errors=True)
