"""``manage.py import_applicants``: validate a file and import it into a portfolio."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.models import ImportJob, Portfolio
from scoring.services.ingestion import (
    KINDS,
    IngestionError,
    import_file_run,
    import_into_new_portfolio_run,
    import_portfolio_resolve,
)
from scoring.services.schemas import SchemaError, schema_register_file

_SHOWN_WIDTH = 40  # the widest a row/column/value cell of the report table gets


class Command(ServiceCommand):
    help = (
        "Validate a CSV (.csv, .csv.gz) or Parquet (.parquet) file and import it into a portfolio. "
        "The whole file is checked before anything is written: with any problem nothing is written "
        "(with --valid-only the valid rows are, unless the problem concerns the whole file, such as its columns). "
        "Applicant files are validated against the portfolio's schema; history files have exactly the columns "
        "applicant_id, month, balance, amount_paid, days_past_due; outcome files applicant_id, defaulted, observed_on. "
        "Problems are reported by row as a spreadsheet counts them: the header is row 1, the first data row is row 2. "
        "Exits with status 1 when the import was rejected or failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the file to import (.csv, .csv.gz or .parquet)")
        parser.add_argument("--portfolio", required=True, help="name of the portfolio")
        parser.add_argument("--kind", choices=KINDS, default=ImportJob.KIND_APPLICANTS, help="what the file holds")
        parser.add_argument(
            "--schema",
            metavar="SCHEMA_FILE",
            help=(
                "a schema JSON file; it is registered first (again is harmless). For an existing portfolio, a "
                "different schema (a new version) becomes the portfolio's schema when an applicants import succeeds."
            ),
        )
        parser.add_argument(
            "--create-portfolio",
            action="store_true",
            help="create the portfolio if it does not exist, with the --schema given (a portfolio is never created "
            "without this flag, so a misspelt name cannot start a new book)",
        )
        parser.add_argument("--valid-only", action="store_true", help="write the valid rows and report the others")
        parser.add_argument(
            "--encoding",
            default="utf-8",
            help="text encoding of a CSV file (default utf-8, with or without a byte-order mark; e.g. latin-1)",
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path} does not exist or is not a file.")
        try:
            schema = schema_register_file(path=options["schema"]) if options["schema"] else None
            bar = _ProgressBar(self.stderr) if self.stderr.isatty() else None
            run = {
                "kind": options["kind"], "path": path, "valid_only": options["valid_only"],
                "encoding": options["encoding"], "progress": bar,
            }  # fmt: skip
            exists = Portfolio.objects.filter(name=options["portfolio"]).exists()
            if not exists and options["create_portfolio"] and schema is not None:
                job = import_into_new_portfolio_run(name=options["portfolio"], schema=schema, **run)
            else:
                portfolio = import_portfolio_resolve(
                    name=options["portfolio"], schema=schema, create=options["create_portfolio"]
                )
                job = import_file_run(portfolio=portfolio, schema=schema, **run)
        except (SchemaError, IngestionError) as exc:
            raise CommandError(str(exc)) from None
        if bar is not None:
            bar.finish()
        self._summary_print(job)
        if job.summary:
            self._summary_table_print(job)
        if job.errors:
            self._report_print(job)
        if job.status != ImportJob.STATUS_SUCCEEDED:
            raise CommandError(job.message, returncode=1)

    def _summary_print(self, job: ImportJob) -> None:
        style = self.style.SUCCESS if job.status == ImportJob.STATUS_SUCCEEDED else self.style.ERROR
        self.stdout.write(
            f"Import #{job.pk} of {job.kind} into portfolio {job.portfolio.name!r} (schema {job.schema}): "
            + style(job.status.upper())
        )
        self.stdout.write(f"  file     {job.file_name}, {job.file_size:,} bytes, sha256 {job.file_sha256 or '-'}")
        self.stdout.write(f"  rows     {job.rows_total:,} read: {job.rows_valid:,} valid, {job.rows_invalid:,} invalid")
        self.stdout.write(
            f"  written  {job.rows_created:,} created, {job.rows_updated:,} updated, {job.rows_unchanged:,} unchanged"
        )
        self.stdout.write(f"  {job.message}")

    def _summary_table_print(self, job: ImportJob) -> None:
        """Every (column, problem) pair of the whole file with its count and first rows."""
        self.stdout.write("\nBy column (the whole file):")
        for entry in job.summary:
            rows = ", ".join("-" if e["row"] is None else str(e["row"]) for e in entry["examples"])
            values = ", ".join(_cell(e["value"]) for e in entry["examples"] if e["value"] is not None)
            self.stdout.write(
                f"  {entry['severity']:<7}  {_cell(entry['column'])}: {entry['problem']}  "
                f"x{entry['count']:,} (rows {rows}{'; e.g. ' + values if values else ''})"
            )

    def _report_print(self, job: ImportJob) -> None:
        shown = len(job.errors)
        more = f", showing the first {shown:,}" if job.error_count > shown else ""
        self.stdout.write(
            f"\n{job.error_count:,} problem(s){more}. Rows count as in a spreadsheet: the header is row 1.\n"
        )
        table = [("row", "column", "value", "message")] + [
            (
                "-" if e["row"] is None else str(e["row"]),
                _cell(e["column"]),
                _cell(e["value"]),
                e["message"],
            )
            for e in job.errors
        ]
        widths = [max(len(line[i]) for line in table) for i in range(3)]
        for number, line in enumerate(table):
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(line[:3], widths, strict=True)) + "  " + line[3]
            )
            if number == 0:
                self.stdout.write("  ".join("-" * width for width in widths) + "  " + "-" * len(line[3]))


def _cell(text: str | None) -> str:
    if text is None:
        return "-"
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= _SHOWN_WIDTH else text[: _SHOWN_WIDTH - 1] + "…"


class _ProgressBar:
    """A one-line bar on stderr, redrawn with ``\\r``: phase, rows done of the
    total and the rate of the current phase."""

    WIDTH = 30

    def __init__(self, stream):
        self.stream = stream
        self.phase: str | None = None
        self.phase_started = self.last = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int, phase: str) -> None:
        now = time.monotonic()
        if phase != self.phase:
            if self.drawn:
                self.stream.write("", ending="\n")
            self.phase, self.phase_started = phase, self.last
        self.last = now
        filled = self.WIDTH if not total else min(self.WIDTH, self.WIDTH * done // total)
        elapsed = now - self.phase_started
        rate = done / elapsed if elapsed > 0 else 0.0
        self.stream.write(
            f"\r{phase:<8} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done:,}/{total:,} rows  {rate:,.0f} rows/s",
            ending="",
        )
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("", ending="\n")
