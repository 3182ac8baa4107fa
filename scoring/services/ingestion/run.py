"""Running an import: validate the whole file, then write it in one transaction.

Pass 1 reads every chunk, validates it and builds the report; nothing is written.
Pass 2 runs only when pass 1 found no problem (or, with ``valid_only``, no
problem with the file as a whole): it reads and validates the file again and
writes the valid rows, all in one transaction, so an error half-way writes
nothing. A rejected or failed job writes only its ImportJob row.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scoring.models import DatasetSchema, ImportJob, Portfolio
from scoring.services import bulk
from scoring.services.errors import ServiceError
from scoring.services.statistics import table_statistics_refresh
from scoring.storage import UPLOADS, local_path, readable_file, storage

from . import records
from .readers import (
    FIRST_DATA_ROW,
    FileProblem,
    ReadLimits,
    encoding_resolve,
    file_facts,
    file_format,
    table_reader_open,
)
from .validation import (
    ChunkValidator,
    ChunkValues,
    FileSpec,
    ImportReport,
    observed_on_default,
    spec_for_applicants,
    spec_for_history,
    spec_for_outcomes,
)

logger = logging.getLogger(__name__)

KINDS = (ImportJob.KIND_APPLICANTS, ImportJob.KIND_HISTORY, ImportJob.KIND_OUTCOMES)
Progress = Callable[[int, int, str], None]  # (rows_done, rows_total, phase: "validate" | "write")


class IngestionError(ServiceError, ValueError):
    """The import cannot start (unknown kind, missing file, unknown encoding, a
    schema that does not apply); no job is recorded."""


class _FileChanged(RuntimeError):
    pass


class _ClaimLost(RuntimeError):
    """The job is no longer this process's: the supervisor marked it failed while this
    process was stalled (or a retry handed it to another worker). Its write is refused."""


def _claim_locked(job: ImportJob) -> bool:
    """Lock the job's row if this process still holds its claim (running, our lease
    token). Inside the write transaction: the supervisor's "gone" update waits for the
    commit, and a claim already lost rolls the rows back."""
    return (
        ImportJob.objects.select_for_update()
        .filter(pk=job.pk, status=ImportJob.STATUS_RUNNING, worker=job.worker)
        .exists()
    )


def _job_finish(job: ImportJob) -> bool:
    """Record the job's outcome if this process still holds its claim; False (nothing
    saved) when the supervisor or a retry took it meanwhile."""
    fields = {f.attname: getattr(job, f.attname) for f in job._meta.concrete_fields if not f.primary_key}
    return bool(
        ImportJob.objects.filter(pk=job.pk, status=ImportJob.STATUS_RUNNING, worker=job.worker).update(**fields)
    )


def import_file_run(
    *,
    portfolio: Portfolio,
    kind: str,
    path: str | Path,
    schema: DatasetSchema | None = None,
    valid_only: bool = False,
    encoding: str = "utf-8",
    created_by=None,
    progress: Progress | None = None,
    file_name: str | None = None,
) -> ImportJob:
    """Validate and import one file into ``portfolio``; returns the finished job
    (succeeded, rejected or failed; never raises for a bad file).

    ``kind``: "applicants" (validated against ``schema``, default the portfolio's;
    a different schema moves the portfolio to it when the import succeeds),
    "history" or "outcomes" (fixed columns). ``valid_only`` writes the valid rows
    of a file whose only problems are in rows. ``file_name`` is the name to record
    (an upload saved under another name). ``progress(rows_done, rows_total, phase)``
    is called after each chunk.
    """
    job = import_job_create(
        portfolio=portfolio,
        kind=kind,
        path=path,
        schema=schema,
        valid_only=valid_only,
        encoding=encoding,
        created_by=created_by,
        file_name=file_name,
    )
    return import_job_run(job_id=job.pk, path=path, encoding=encoding, progress=progress) or job


def import_into_new_portfolio_run(*, name: str, schema: DatasetSchema, **kwargs) -> ImportJob:
    """The first import of a portfolio that does not exist yet: the portfolio is
    created for it and deleted again (with its job) unless the import succeeds, so a
    rejected first file starts no book. The returned job keeps its report in memory."""
    if Portfolio.objects.filter(name=name).exists():
        raise IngestionError(f"Portfolio {name!r} already exists.")
    portfolio = Portfolio.objects.create(name=name, schema=schema)
    try:
        job = import_file_run(portfolio=portfolio, schema=schema, **kwargs)
    except BaseException:
        portfolio.delete()
        raise
    if job.status != ImportJob.STATUS_SUCCEEDED:
        portfolio.delete()
        job.message += " The new portfolio was not kept."
    return job


def import_portfolio_resolve(*, name: str, schema: DatasetSchema | None = None, create: bool = False) -> Portfolio:
    """The portfolio an import goes to. With ``create`` a missing portfolio is
    created with ``schema`` (which it then needs); without, a missing portfolio is
    an error, so that a misspelt name cannot start a new book."""
    portfolio = Portfolio.objects.select_related("schema").filter(name=name).first()
    if portfolio is not None:
        return portfolio
    if not create:
        raise IngestionError(
            f"Portfolio {name!r} does not exist; to create it, pass --create-portfolio with --schema SCHEMA_FILE."
        )
    if schema is None:
        raise IngestionError(
            f"Portfolio {name!r} does not exist yet: creating it needs a schema (--schema SCHEMA_FILE)."
        )
    return Portfolio.objects.create(name=name, schema=schema)


# An uploaded file is kept in the uploads storage while its import runs. A job's source
# is a path a worker can read: the upload's own path on local storage (or a file given
# to the command), or UPLOAD_SCHEME + its name in a storage without paths (S3).
UPLOAD_SCHEME = "upload:"


def import_upload_store(*, upload) -> str | Path:
    """Save an uploaded file (a Django ``UploadedFile``) in the uploads storage, under a
    folder of its own, and return the job source that reads it; too large a file is
    refused first. On local storage the folder is readable by this user only (0700, the
    file 0600). The copy lives only until its import ends (:func:`import_upload_discard`):
    it holds personal data in clear, which the service otherwise stores only encrypted."""
    if upload.size > settings.IMPORT_MAX_FILE_MB * 1024 * 1024:
        raise IngestionError(f"The file is larger than {settings.IMPORT_MAX_FILE_MB} MB (IMPORT_MAX_FILE_MB).")
    store = storage(UPLOADS)
    name = store.save(f"{uuid.uuid4().hex}/{Path(upload.name).name}", upload)
    path = local_path(store, name)
    return path if path is not None else UPLOAD_SCHEME + name


def _upload_name(source: str | Path) -> str | None:
    """The uploads-storage name of a job source, or None for a file that is not an upload
    (a path given to the command: the user's, never deleted)."""
    if isinstance(source, str) and source.startswith(UPLOAD_SCHEME):
        return source.removeprefix(UPLOAD_SCHEME)
    store = storage(UPLOADS)
    root = local_path(store, "")
    if root is None:
        return None
    try:
        path = Path(source).resolve()
    except OSError:
        return None
    if path.parent.parent != root.resolve():
        return None
    return path.relative_to(root.resolve()).as_posix()


def import_upload_discard(source: str | Path) -> bool:
    """Delete an uploaded file and its folder (True if it was an upload). Files outside
    the uploads storage (a path given to the command) are the user's and are kept."""
    name = _upload_name(source)
    if name is None:
        return False
    store = storage(UPLOADS)
    path = local_path(store, name)
    if path is not None:
        shutil.rmtree(path.parent, ignore_errors=True)
    else:
        store.delete(name)
    return True


def import_source_size(source: str | Path) -> int | None:
    """The size in bytes of a job's file, or None when it is gone."""
    if isinstance(source, str) and source.startswith(UPLOAD_SCHEME):
        store, name = storage(UPLOADS), source.removeprefix(UPLOAD_SCHEME)
        return store.size(name) if store.exists(name) else None
    path = Path(source)
    return path.stat().st_size if path.is_file() else None


@contextmanager
def import_source_readable(source: str | Path) -> Iterator[Path]:
    """A path the readers can open for a job's file: the file itself, or a private
    temporary copy of an object in the uploads storage, deleted when the block ends."""
    if isinstance(source, str) and source.startswith(UPLOAD_SCHEME):
        name = source.removeprefix(UPLOAD_SCHEME)
        # Under its own file name: the readers tell CSV, .gz and Parquet by its extensions.
        with readable_file(storage(UPLOADS), name) as path:
            yield path
    else:
        yield Path(source)


def import_job_create(
    *,
    portfolio: Portfolio,
    kind: str,
    path: str | Path,
    schema: DatasetSchema | None = None,
    valid_only: bool = False,
    encoding: str = "utf-8",
    created_by=None,
    file_name: str | None = None,
) -> ImportJob:
    """Check the arguments and record a pending job (run it with :func:`import_job_run`)."""
    if kind not in KINDS:
        raise IngestionError(f"Unknown kind {kind!r}: use one of {', '.join(KINDS)}.")
    size = import_source_size(path)
    if size is None:
        raise IngestionError(f"{path} does not exist or is not a file.")
    try:
        encoding_resolve(encoding)
    except LookupError:
        raise IngestionError(f"Unknown encoding {encoding!r}.") from None
    if schema is not None and kind != ImportJob.KIND_APPLICANTS and schema.pk != portfolio.schema_id:
        raise IngestionError(
            f"Schema {schema} applies to applicant files only: {kind} files have fixed columns and are read "
            f"with the portfolio's schema ({portfolio.schema})."
        )
    job = ImportJob.objects.create(
        portfolio=portfolio,
        kind=kind,
        schema=schema or portfolio.schema,
        file_name=(file_name or Path(str(path).removeprefix(UPLOAD_SCHEME)).name)[:500],
        file_size=size,
        source=str(path)[:1000],  # what a retry reads again
        valid_only=valid_only,
        created_by=created_by,
    )
    from scoring.audit import audit_record

    audit_record(
        action="import.create", actor=created_by, portfolio_id=portfolio.pk, object_type="importjob",
        object_ids=[job.pk], details={"kind": kind, "file_size": job.file_size, "schema": job.schema_id},
    )  # fmt: skip
    return job


def import_job_run(
    *, job_id: int, path: str | Path, encoding: str = "utf-8", progress: Progress | None = None
) -> ImportJob | None:
    """Claim a pending job and run it. Returns None when the job is gone or
    another worker claimed it first."""
    from scoring.services.supervisor import lease_claim_fields, lease_held, worker_identity

    token = worker_identity()
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.STATUS_PENDING).update(
        status=ImportJob.STATUS_RUNNING, started_at=timezone.now(), **lease_claim_fields(token)
    )
    if not claimed:
        if not ImportJob.objects.filter(pk=job_id).exists():
            import_upload_discard(path)  # nobody will read it
        return None
    try:
        # The lease tells the supervisor this process is alive (a killed import is marked failed).
        with lease_held(ImportJob, job_id, token):
            return _job_claimed_run(job_id=job_id, path=path, encoding=encoding, progress=progress)
    finally:
        # However the import ended, the uploaded copy goes (a redelivered message
        # finds the job done and the file gone, and reads neither).
        import_upload_discard(path)


def _job_claimed_run(*, job_id: int, path: str | Path, encoding: str, progress: Progress | None) -> ImportJob:
    job = ImportJob.objects.select_related("portfolio", "schema").get(pk=job_id)
    try:
        with import_source_readable(path) as readable:
            _job_execute(job, path=readable, encoding=encoding_resolve(encoding), progress=progress)
    except _ClaimLost:
        logger.warning("import job %s: no longer ours (marked failed or retried meanwhile); nothing written", job.pk)
        job.refresh_from_db()
        return job
    except Exception as exc:  # the job records any failure; the traceback goes to the log
        logger.exception("Import job %s failed", job.pk)
        job.status = ImportJob.STATUS_FAILED
        job.rows_created = job.rows_updated = job.rows_unchanged = 0
        job.message = (
            "Failed: the file or the portfolio's applicants changed while it was imported; nothing was written."
            if isinstance(exc, _FileChanged)
            else f"Failed ({type(exc).__name__}: {exc}); nothing was written."
        )[:5000]
    if job.status == ImportJob.STATUS_SUCCEEDED:
        return job  # recorded in the write's own transaction
    job.finished_at = timezone.now()
    if not _job_finish(job):
        logger.warning("import job %s: no longer ours; its outcome (%s) was not recorded", job.pk, job.status)
        job.refresh_from_db()
    return job


def _spec(job: ImportJob) -> FileSpec:
    if job.kind == ImportJob.KIND_APPLICANTS:
        return spec_for_applicants(job.schema)
    if job.kind == ImportJob.KIND_HISTORY:
        return spec_for_history()
    return spec_for_outcomes(job.schema)


def _job_execute(job: ImportJob, *, path: Path, encoding: str, progress: Progress | None) -> None:
    report = ImportReport(cap=settings.IMPORT_MAX_REPORTED_ERRORS, examples=settings.IMPORT_REPORT_EXAMPLES)
    started = time.monotonic()
    stat_before = path.stat()
    try:
        fmt = file_format(path)
        limit = settings.IMPORT_MAX_FILE_MB * 1024 * 1024
        if job.file_size > limit:
            raise FileProblem(
                f"The file is {job.file_size / 1024 / 1024:,.1f} MB; at most {settings.IMPORT_MAX_FILE_MB:,} MB "
                "are accepted (IMPORT_MAX_FILE_MB)."
            )
        facts = file_facts(path, fmt)
        job.file_sha256 = facts.sha256
        rows = _file_pass(
            job, path=path, fmt=fmt, encoding=encoding, report=report, progress=progress, total=facts.rows_estimate
        )
    except FileProblem as problem:
        for row, column, message in problem.errors:
            report.file_error(message, row=row, column=column)
        rows = None
    job.rows_total = report.rows_read
    job.rows_invalid = report.rows_invalid
    job.rows_valid = max(job.rows_total - report.rows_invalid, 0)
    job.error_count = report.error_count
    job.errors = report.errors
    job.warning_count = report.warning_count
    job.summary = report.summary_list()
    if rows is None or report.structural or (report.error_count and not job.valid_only) or not job.rows_valid:
        job.status = ImportJob.STATUS_REJECTED
        if job.valid_only and report.structural:
            why = " (--valid-only skips invalid rows, but these problems concern the whole file)"
        elif not job.rows_valid and rows is not None and not report.structural:
            # Nothing to write is a failure whatever the flags: the portfolio and its
            # schema are left as they were.
            why = " and no valid row" if report.error_count else ": the file has no data rows"
        else:
            why = ""
        job.message = f"Rejected: {report.error_count:,} problem(s) found{why}; nothing was written."
        return

    counts = bulk.WriteCounts()
    rewrite = ImportReport(cap=0)
    with transaction.atomic():
        if job.kind == ImportJob.KIND_APPLICANTS and job.portfolio.schema_id != job.schema_id:
            job.portfolio.schema = job.schema
            job.portfolio.save(update_fields=["schema", "updated_at"])
        with bulk.staging_open() as staging:
            writer = _writer(job, staging, counts)
            try:
                again = _file_pass(
                    job,
                    path=path,
                    fmt=fmt,
                    encoding=encoding,
                    report=rewrite,
                    progress=progress,
                    total=rows,
                    write=writer,
                )
            finally:
                writer.close()  # before anything else touches the connection, even on error
            writer.raise_error()
        stat_after = path.stat()
        if (
            again != rows
            or rewrite.error_count != report.error_count
            or (stat_after.st_size, stat_after.st_mtime_ns) != (stat_before.st_size, stat_before.st_mtime_ns)
        ):
            raise _FileChanged()  # rolls back the transaction
        # Fenced: a job the supervisor marked failed while this process was stalled (or
        # one a retry gave to another worker) stays so, and these rows roll back.
        if not _claim_locked(job):
            raise _ClaimLost()
        job.status = ImportJob.STATUS_SUCCEEDED
        job.rows_created, job.rows_updated, job.rows_unchanged = counts.created, counts.updated, counts.unchanged
        elapsed = time.monotonic() - started
        skipped = f" {job.rows_invalid:,} invalid row(s) were skipped (see the report)." if job.rows_invalid else ""
        job.message = (
            f"Imported {job.rows_valid:,} row(s): {counts.created:,} created, {counts.updated:,} updated, "
            f"{counts.unchanged:,} unchanged, in {elapsed:,.1f} s.{skipped}"
        )
        job.finished_at = timezone.now()
        _job_finish(job)  # with the rows, in one commit: never a running job over written rows
    table_statistics_refresh(kind=job.kind)  # the planner sees the new rows (scoring/services/statistics.py)


def _file_pass(
    job: ImportJob,
    *,
    path: Path,
    fmt: str,
    encoding: str,
    report: ImportReport,
    progress: Progress | None,
    total: int,
    write: _ChunkWriter | None = None,
) -> int:
    """Read and validate the whole file (and hand each chunk to ``write``, if
    given). Returns the number of data rows."""
    max_rows = settings.IMPORT_MAX_ROWS
    reader = table_reader_open(
        path, fmt=fmt, encoding=encoding, chunk_rows=settings.IMPORT_CHUNK_ROWS, limits=ReadLimits.from_settings()
    )
    if len(reader.columns) > settings.IMPORT_MAX_COLUMNS:
        raise FileProblem(
            f"The file has {len(reader.columns):,} columns; at most {settings.IMPORT_MAX_COLUMNS:,} are accepted "
            "(IMPORT_MAX_COLUMNS).",
            row=1,
        )
    if reader.rows is not None and reader.rows > max_rows:
        raise FileProblem(f"The file has {reader.rows:,} rows; at most {max_rows:,} are accepted (IMPORT_MAX_ROWS).")
    lookup = None
    if job.kind != ImportJob.KIND_APPLICANTS:
        portfolio_id = job.portfolio_id

        db_lock = write.lock if write is not None else nullcontext()

        def lookup(ids: list[str]):
            with db_lock:
                return bulk.applicant_ids_lookup(portfolio_id=portfolio_id, external_ids=ids)

    validator = ChunkValidator(_spec(job), report, applicant_lookup=lookup)
    validator.header_check(reader.columns)
    phase = "write" if write else "validate"
    rows = 0
    for offset, frame in reader.chunks():
        rows = offset + len(frame)
        report.rows_read = rows
        if rows > max_rows:
            raise FileProblem(
                f"The file has more than {max_rows:,} rows (IMPORT_MAX_ROWS); it was not read past this row.",
                row=max_rows + FIRST_DATA_ROW,
            )
        chunk = validator.validate(offset, frame)
        if write is not None and chunk.valid.any():
            write(chunk)
        if progress is not None:
            progress(rows, max(total, rows), phase)
    return rows


class _ChunkWriter:
    """Writes the valid rows of each chunk: ``build`` turns a chunk into rows (in
    Python), ``store`` writes them. For history and outcomes on PostgreSQL,
    ``store`` runs on a second thread one chunk behind, so that PostgreSQL merges
    chunk n on its core while Python reads and validates chunk n+1 on the other.
    Both threads use the import's one connection (one transaction); ``lock``
    keeps them from using it at the same time."""

    def __init__(self, build: Callable, store: Callable, *, threaded: bool):
        self.build = build
        self.store = store
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if threaded:
            self.queue: queue.Queue = queue.Queue(maxsize=1)
            self.thread = threading.Thread(target=self._drain, name="import-writer", daemon=True)
            self.thread.start()

    def __call__(self, chunk: ChunkValues) -> None:
        rows = self.build(chunk)
        if self.thread is None:
            self.store(rows)
            return
        self.raise_error()
        self.queue.put(rows)

    def _drain(self) -> None:
        while (rows := self.queue.get()) is not None:
            if self.error is None:  # after an error, keep taking chunks so the reader never blocks
                try:
                    with self.lock:
                        self.store(rows)
                except BaseException as exc:
                    self.error = exc

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
            self.thread = None

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def _writer(job: ImportJob, staging: bulk.Staging, counts: bulk.WriteCounts) -> _ChunkWriter:
    portfolio_id = job.portfolio_id
    if job.kind == ImportJob.KIND_APPLICANTS:
        spec = spec_for_applicants(job.schema)
        has_target = bool(job.schema.columns_with_role(DatasetSchema.ROLE_TARGET))
        observed_on = observed_on_default(job.schema) if has_target else None

        def store_applicants(built) -> None:
            rows, pii = built
            counts.add(
                bulk.applicants_upsert(
                    staging=staging,
                    portfolio_id=portfolio_id,
                    schema_id=job.schema_id,
                    rows=rows,
                    observed_on=observed_on,
                    pii=pii,
                )
            )

        # Applicants stay on this thread: their PII is written through the ORM.
        return _ChunkWriter(lambda chunk: records.applicant_rows(spec, chunk), store_applicants, threaded=False)

    threaded = bulk.is_postgresql()
    if job.kind == ImportJob.KIND_HISTORY:

        def store_history(rows) -> None:
            counts.add(bulk.history_upsert(staging=staging, portfolio_id=portfolio_id, rows=rows))

        return _ChunkWriter(records.history_rows, store_history, threaded=threaded)

    def store_outcomes(rows) -> None:
        counts.add(bulk.outcomes_upsert(staging=staging, portfolio_id=portfolio_id, rows=rows))

    return _ChunkWriter(records.outcome_rows, store_outcomes, threaded=threaded)
