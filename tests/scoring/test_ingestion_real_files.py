"""Files as lenders have them: defects of issue 13, each with the test that failed before."""

import copy

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from scoring.models import Applicant, ImportJob, Outcome, Portfolio
from scoring.services.ingestion import import_file_run
from scoring.services.schemas import schema_register

from .test_ingestion import german_rows

pytestmark = pytest.mark.django_db


def test_valid_only_with_no_valid_row_is_rejected_and_leaves_the_portfolio_and_its_schema(
    german_portfolio, write_csv, counts
):
    document = copy.deepcopy(german_portfolio.schema.definition)
    document["version"] = 2
    v2 = schema_register(document=document)
    header, rows = german_rows(5)
    duration = header.index("duration_in_month")
    for row in rows:
        row[duration] = "many"
    path = write_csv("all-bad.csv", header, rows)
    before = counts()

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path, schema=v2, valid_only=True)

    german_portfolio.refresh_from_db()
    assert job.status == ImportJob.STATUS_REJECTED and "no valid row" in job.message
    assert german_portfolio.schema_id != v2.pk and counts() == before


def test_a_file_with_only_a_header_is_rejected(german_portfolio, write_csv):
    header, _ = german_rows(1)
    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=write_csv("empty.csv", header, []))
    assert job.status == ImportJob.STATUS_REJECTED and "no data rows" in job.message


def test_a_rejected_first_import_creates_no_portfolio(write_csv, tmp_path):
    from .conftest import DEMO

    header, rows = german_rows(3)
    rows[0][header.index("duration_in_month")] = "many"
    path = write_csv("bad.csv", header, rows)
    with pytest.raises(CommandError, match="not kept"):
        call_command(
            "import_applicants", str(path), "--portfolio", "brand-new", "--create-portfolio",
            "--schema", str(DEMO / "german_credit.schema.json"), "--kind", "applicants",
        )  # fmt: skip
    assert not Portfolio.objects.filter(name="brand-new").exists()
    # valid-only with two good rows of three succeeds and keeps the new portfolio
    call_command(
        "import_applicants", str(path), "--portfolio", "brand-new", "--create-portfolio",
        "--schema", str(DEMO / "german_credit.schema.json"), "--valid-only",
    )  # fmt: skip
    assert Portfolio.objects.filter(name="brand-new").exists()
    for row in rows:
        row[header.index("duration_in_month")] = "many"
    with pytest.raises(CommandError, match="not kept"):
        call_command(
            "import_applicants", str(write_csv("worse.csv", header, rows)), "--portfolio", "newer",
            "--create-portfolio", "--schema", str(DEMO / "german_credit.schema.json"), "--valid-only",
        )  # fmt: skip
    assert not Portfolio.objects.filter(name="newer").exists()


def test_a_nul_byte_is_a_cell_error_with_its_row_and_column(german_portfolio, write_csv):
    header, rows = german_rows(4)
    rows[2][header.index("purpose")] = "car\x00(new)"
    path = write_csv("nul.csv", header, rows)

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path, valid_only=True)

    assert job.status == ImportJob.STATUS_SUCCEEDED and job.rows_created == 3
    (error,) = job.errors
    assert (error["row"], error["column"]) == (4, "purpose") and "NUL" in error["message"]
    assert error["value"] == "car\\0(new)"


def test_rows_without_a_label_are_applications_without_an_outcome(german_portfolio, write_csv):
    header, rows = german_rows(6)
    target = header.index("creditability")
    rows[1][target] = rows[4][target] = ""
    path = write_csv("unlabelled.csv", header, rows)

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path)

    assert job.status == ImportJob.STATUS_SUCCEEDED and job.rows_created == 6
    assert Outcome.objects.count() == 4
    assert not Outcome.objects.filter(applicant__external_id__in=[rows[1][0], rows[4][0]]).exists()


def test_a_schema_can_still_require_labels(german_portfolio, write_csv):
    document = copy.deepcopy(german_portfolio.schema.definition)
    document["version"] = 3
    document["columns"][-1]["nullable"] = False
    strict = schema_register(document=document)
    header, rows = german_rows(3)
    rows[1][header.index("creditability")] = ""
    job = import_file_run(
        portfolio=german_portfolio, kind="applicants", path=write_csv("x.csv", header, rows), schema=strict
    )
    assert job.status == ImportJob.STATUS_REJECTED and job.errors[0]["message"] == "a value is required here"


def test_unseen_categories_are_rejected_or_stored_as_other_with_a_counted_warning(german_portfolio, write_csv):
    header, rows = german_rows(5)
    purpose = header.index("purpose")
    rows[0][purpose] = rows[3][purpose] = "yacht"
    path = write_csv("unseen.csv", header, rows)
    rejected = import_file_run(portfolio=german_portfolio, kind="applicants", path=path)
    assert rejected.status == ImportJob.STATUS_REJECTED and rejected.error_count == 2

    document = copy.deepcopy(german_portfolio.schema.definition)
    document["version"] = 4
    next(c for c in document["columns"] if c["name"] == "purpose")["unseen"] = "other"
    lenient = schema_register(document=document)
    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path, schema=lenient)

    assert job.status == ImportJob.STATUS_SUCCEEDED and job.rows_created == 5 and job.warning_count == 2
    (warning,) = [e for e in job.summary if e["severity"] == "warning"]
    assert warning["column"] == "purpose" and warning["count"] == 2
    assert [e["row"] for e in warning["examples"]] == [2, 5]
    assert Applicant.objects.get(external_id=rows[0][0]).features["purpose"] == "other"


def test_the_summary_counts_every_problem_by_column_beyond_the_kept_errors(german_portfolio, write_csv, settings):
    settings.IMPORT_MAX_REPORTED_ERRORS = 3
    settings.IMPORT_REPORT_EXAMPLES = 2
    header, rows = german_rows(40)
    for row in rows:
        row[header.index("credit_amount")] = "lots"
    rows[39][header.index("housing")] = "castle"
    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=write_csv("s.csv", header, rows))

    assert len(job.errors) == 3 and job.error_count == 41
    by_column = {(e["column"], e["problem"]): e for e in job.summary}
    amount = by_column[("credit_amount", "not a number")]
    assert amount["count"] == 40 and [e["row"] for e in amount["examples"]] == [2, 3]
    housing = next(e for (column, _), e in by_column.items() if column == "housing")
    assert housing["count"] == 1 and housing["examples"] == [{"row": 41, "value": "castle"}]
