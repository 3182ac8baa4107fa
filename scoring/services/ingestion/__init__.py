"""Validated ingestion of applicant, repayment-history and outcome files.

The public API (the command, the REST API and the portal call the same service)::

    import_file_run(*, portfolio, kind, path, schema=None, valid_only=False,
                    encoding="utf-8", created_by=None, progress=None, file_name=None) -> ImportJob
    import_job_create(...) -> ImportJob          # record a pending job
    import_job_run(*, job_id, path, ...) -> ImportJob | None   # claim and run it (a Celery task)
    import_portfolio_resolve(*, name, schema=None, create=False) -> Portfolio

Files are CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``), read in chunks of
``IMPORT_CHUNK_ROWS``; the whole file is validated before anything is written.
Report rows are numbered as in a spreadsheet: the header is row 1, the first data
row is row 2. See :mod:`.readers`, :mod:`.validation` and :mod:`.run`; the
database writers are in :mod:`scoring.services.bulk`.
"""

from .run import (
    KINDS,
    IngestionError,
    Progress,
    import_file_run,
    import_into_new_portfolio_run,
    import_job_create,
    import_job_run,
    import_portfolio_resolve,
    import_upload_discard,
    import_upload_store,
)
from .validation import HISTORY_COLUMNS, OUTCOME_COLUMNS, REDACTED

__all__ = [
    "HISTORY_COLUMNS",
    "KINDS",
    "OUTCOME_COLUMNS",
    "REDACTED",
    "IngestionError",
    "Progress",
    "import_file_run",
    "import_into_new_portfolio_run",
    "import_job_create",
    "import_job_run",
    "import_portfolio_resolve",
    "import_upload_discard",
    "import_upload_store",
]
