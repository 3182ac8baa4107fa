import io

import pytest
from django.core.management import CommandError, ManagementUtility, base, call_command

from scoring.models import Applicant, ImportJob, Portfolio, RepaymentMonth

from .conftest import DEMO, GERMAN_CSV

pytestmark = pytest.mark.django_db

GERMAN_SCHEMA = DEMO / "german_credit.schema.json"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_applicants", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_imports_a_file_and_prints_a_summary(german_portfolio):
    out, _ = run_command(str(GERMAN_CSV), "--portfolio", "german")

    assert "SUCCEEDED" in out
    assert "1,000 read: 1,000 valid, 0 invalid" in out
    assert "1,000 created, 0 updated, 0 unchanged" in out
    assert Applicant.objects.count() == 1000


def test_it_creates_the_portfolio_from_a_schema_file_and_a_second_run_changes_nothing(db):
    args = [str(GERMAN_CSV), "--portfolio", "new book", "--schema", str(GERMAN_SCHEMA), "--create-portfolio"]
    run_command(*args)
    out, _ = run_command(*args)

    portfolio = Portfolio.objects.get(name="new book")
    assert str(portfolio.schema) == "german_credit v1"
    assert "0 created, 0 updated, 1,000 unchanged" in out


def test_it_refuses_a_missing_portfolio_without_create_portfolio(db):
    with pytest.raises(CommandError, match="--create-portfolio"):
        run_command(str(GERMAN_CSV), "--portfolio", "typo", "--schema", str(GERMAN_SCHEMA))
    assert not Portfolio.objects.exists() and not ImportJob.objects.exists()


def test_it_refuses_to_create_a_portfolio_without_a_schema(db):
    with pytest.raises(CommandError, match="needs a schema"):
        run_command(str(GERMAN_CSV), "--portfolio", "new", "--create-portfolio")


def test_a_rejected_import_exits_1_and_prints_the_report_as_a_table(german_portfolio, write_csv, capsys, monkeypatch):
    # The real command line (run_from_argv), minus closing the test database at the end.
    monkeypatch.setattr(base.connections, "close_all", lambda: None)
    frame_header = GERMAN_CSV.read_text().splitlines()[0].split(",")
    lines = GERMAN_CSV.read_text().splitlines()[1:4]
    lines[1] = lines[1].replace(",48,", ",forty-eight,", 1)
    path = write_csv("bad.csv", frame_header, [])
    path.write_text(",".join(frame_header) + "\n" + "\n".join(lines) + "\n")

    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "import_applicants", str(path), "--portfolio", "german"]).execute()

    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert "REJECTED" in out
    table = out[out.index("row  ") :].splitlines()
    assert table[0].split() == ["row", "column", "value", "message"]
    assert table[2].split()[:3] == ["3", "duration_in_month", "forty-eight"]
    assert "not a number" in table[2]
    assert "Rejected: 1 problem(s) found; nothing was written." in err
    assert not Applicant.objects.exists()


def test_history_with_valid_only_writes_the_valid_rows_and_exits_0(german_portfolio, write_csv):
    run_command(str(GERMAN_CSV), "--portfolio", "german")
    header = ["applicant_id", "month", "balance", "amount_paid", "days_past_due"]
    rows = [["GC-0001", "2025-01", "10", "1", "0"], ["GC-9999", "2025-01", "10", "1", "0"]]

    out, _ = run_command(
        str(write_csv("h.csv", header, rows)), "--portfolio", "german", "--kind", "history", "--valid-only"
    )

    assert "SUCCEEDED" in out and "1 invalid row(s) were skipped" in out
    assert "GC-9999" in out  # the report lists the skipped row
    assert RepaymentMonth.objects.count() == 1


def test_it_draws_a_progress_bar_on_a_terminal(german_portfolio):
    err = _Terminal()
    call_command("import_applicants", str(GERMAN_CSV), "--portfolio", "german", stdout=io.StringIO(), stderr=err)

    text = err.getvalue()
    assert "\rvalidate" in text and "\rwrite" in text
    assert "1,000/1,000 rows" in text and "rows/s" in text


def test_an_unknown_encoding_is_a_command_error(german_portfolio):
    with pytest.raises(CommandError, match="Unknown encoding"):
        run_command(str(GERMAN_CSV), "--portfolio", "german", "--encoding", "klingon")


def test_a_missing_file_is_a_command_error(german_portfolio, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run_command(str(tmp_path / "nope.csv"), "--portfolio", "german")
