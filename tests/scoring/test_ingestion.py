import copy
import hashlib
import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from django.contrib.auth import get_user_model

from models.synthetic import generate_all
from scoring.models import Applicant, ApplicantPII, ImportJob, Outcome, RepaymentMonth
from scoring.services import bulk
from scoring.services.ingestion import IngestionError, import_file_run
from scoring.services.pii import pii_read
from scoring.services.schemas import schema_register

from .conftest import GERMAN_CSV

pytestmark = pytest.mark.django_db

PROTECTED_GERMAN = {"personal_status_and_sex", "age_in_years", "foreign_worker"}
HISTORY_HEADER = ["applicant_id", "month", "balance", "amount_paid", "days_past_due"]


def german_rows(n: int | None = None) -> tuple[list[str], list[list[str]]]:
    frame = pd.read_csv(GERMAN_CSV, dtype=str, keep_default_na=False)
    rows = frame.to_numpy().tolist()
    return list(frame.columns), rows[:n] if n else rows


def synthetic_rows(n: int, seed: int = 1) -> tuple[list[str], list[list[str]]]:
    frame = generate_all(n, seed=seed).applicants.astype(str)
    return list(frame.columns), frame.to_numpy().tolist()


def errors_at(job: ImportJob) -> set[tuple[int | None, str | None]]:
    return {(e["row"], e["column"]) for e in job.errors}


def test_a_csv_with_many_kinds_of_error_is_reported_by_row_and_column_and_nothing_is_written(
    synthetic_portfolio, write_csv, counts
):
    header, rows = synthetic_rows(15)
    col = {name: i for i, name in enumerate(header)}
    header = [*header, "favourite_colour"]
    rows = [[*row, "blue"] for row in rows]
    long_name = "Bartholomew " * 20
    rows[1][col["income"]] = "abc"
    rows[2][col["loan_amount"]] = "-5"
    rows[3][col["duration_months"]] = "12.5"
    rows[4][col["debt_to_income"]] = "nan"
    rows[5][col["income"]] = "inf"
    rows[6][col["applicant_id"]] = ""
    rows[7][col["home_ownership"]] = "castle"
    rows[8][col["defaulted"]] = "maybe"
    rows[9][col["full_name"]] = long_name
    rows[10][col["date_of_birth"]] = "1990-02-30"
    rows[11][col["applicant_id"]] = rows[0][col["applicant_id"]]
    rows[12][col["region"]] = ""
    rows[13][col["employment_years"]] = ""  # nullable: fine
    rows[13][col["address"]] = "12 Rue de la Gare@@"
    rows[14][col["duration_months"]] = "0"
    rows[14][col["debt_to_income"]] = "11"
    path = write_csv("errors.csv", header, rows)
    path.write_bytes(path.read_bytes().replace(b"@@", b"\xe9"))  # a Latin-1 byte: not UTF-8
    expected = [
        (1, "favourite_colour", "not declared"),
        (3, "income", "not a number"),
        (4, "loan_amount", "negative"),
        (5, "duration_months", "not a whole number"),
        (6, "debt_to_income", "NaN and infinity"),
        (7, "income", "NaN and infinity"),
        (8, "applicant_id", "the id is empty"),
        (9, "home_ownership", "not one of the declared categories"),
        (10, "defaulted", "not a label of the target"),
        (11, "full_name", "longer than 200 characters"),
        (12, "date_of_birth", "not a date"),
        (13, "applicant_id", "already used in row 2"),
        (14, "region", "a value is required"),
        (15, "address", "undecodable"),
        (16, "duration_months", "below the minimum 1"),
        (16, "debt_to_income", "above the maximum 10"),
    ]
    before = counts()

    job = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)

    assert job.status == ImportJob.STATUS_REJECTED
    assert counts() == before
    assert job.error_count == len(expected) and len(job.errors) == len(expected)
    for row, column, fragment in expected:
        matching = [e for e in job.errors if e["row"] == row and e["column"] == column]
        assert matching, f"no error reported at row {row}, column {column}"
        assert fragment in matching[0]["message"], matching[0]
    by_place = {(e["row"], e["column"]): e for e in job.errors}
    assert by_place[(3, "income")]["value"] == "abc"
    assert by_place[(13, "applicant_id")]["value"] == rows[0][col["applicant_id"]]
    # A personal-data column's value is shown by its shape only (the format that failed).
    assert by_place[(11, "full_name")]["value"].startswith("Aaaaaaaaaaa Aaaaaaaaaaa")
    assert by_place[(12, "date_of_birth")]["value"] == "9999-99-99"
    assert "Gare" not in by_place[(15, "address")]["value"]
    assert "Bartholomew" not in json.dumps(job.errors) + json.dumps(job.summary)
    assert "Bartholomew" not in json.dumps(job.errors) and "Rue de la Gare" not in json.dumps(job.errors)
    assert job.rows_total == 15 and job.rows_invalid == 14 and job.rows_valid == 1
    assert [e["row"] for e in job.errors] == sorted(e["row"] for e in job.errors)


def test_a_missing_column_is_reported_on_the_header_row(german_portfolio, write_csv, counts):
    header, rows = german_rows(3)
    drop = header.index("purpose")
    path = write_csv("missing.csv", header[:drop] + header[drop + 1 :], [r[:drop] + r[drop + 1 :] for r in rows])
    before = counts()

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path, valid_only=True)

    assert job.status == ImportJob.STATUS_REJECTED
    assert (1, "purpose") in errors_at(job)
    assert "missing" in job.errors[0]["message"]
    assert counts() == before


def test_importing_german_credit_twice_leaves_1000_applicants_and_outcomes(german_portfolio):
    first = import_file_run(portfolio=german_portfolio, kind="applicants", path=GERMAN_CSV)
    second = import_file_run(portfolio=german_portfolio, kind="applicants", path=GERMAN_CSV)

    assert first.status == second.status == ImportJob.STATUS_SUCCEEDED, (first.message, second.message)
    assert (first.rows_created, first.rows_updated, first.rows_unchanged) == (1000, 0, 0)
    assert (second.rows_created, second.rows_updated, second.rows_unchanged) == (0, 0, 1000)
    assert Applicant.objects.filter(portfolio=german_portfolio).count() == 1000
    assert Outcome.objects.filter(portfolio=german_portfolio).count() == 1000
    assert Outcome.objects.filter(defaulted=True).count() == 300  # 'bad' is the positive label
    assert set(Outcome.objects.values_list("observed_on", flat=True)) == {date(1994, 1, 1)}
    for features, protected in Applicant.objects.values_list("features", "protected_attributes"):
        assert not PROTECTED_GERMAN & set(features)
        assert set(protected) == PROTECTED_GERMAN
    first_applicant = Applicant.objects.get(external_id="GC-0001")
    assert first_applicant.protected_attributes == {
        "personal_status_and_sex": "male : single",
        "age_in_years": 67,
        "foreign_worker": "yes",
    }
    assert first_applicant.features["credit_amount"] == 1169
    assert first_applicant.features["purpose"] == "radio/television"
    assert "creditability" not in first_applicant.features and "applicant_id" not in first_applicant.features
    assert first_applicant.schema_id == german_portfolio.schema_id


def test_a_changed_row_is_counted_as_updated_and_the_rest_unchanged(german_portfolio, write_csv):
    header, rows = german_rows(20)
    import_file_run(portfolio=german_portfolio, kind="applicants", path=write_csv("a.csv", header, rows))
    rows[4][header.index("credit_amount")] = "4321"
    rows[7][header.index("creditability")] = "bad" if rows[7][header.index("creditability")] == "good" else "good"

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=write_csv("b.csv", header, rows))

    assert (job.rows_created, job.rows_updated, job.rows_unchanged) == (0, 2, 18)
    assert Applicant.objects.get(external_id=rows[4][0]).features["credit_amount"] == 4321
    assert Outcome.objects.count() == 20


def test_valid_only_writes_exactly_the_valid_rows(german_portfolio, write_csv):
    header, rows = german_rows(6)
    rows[1][header.index("duration_in_month")] = "forever"
    rows[4][header.index("housing")] = "castle"
    path = write_csv("some_bad.csv", header, rows)

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path, valid_only=True)

    assert job.status == ImportJob.STATUS_SUCCEEDED
    assert (job.rows_total, job.rows_valid, job.rows_invalid, job.rows_created) == (6, 4, 2, 4)
    assert errors_at(job) == {(3, "duration_in_month"), (6, "housing")}
    written = set(Applicant.objects.values_list("external_id", flat=True))
    assert written == {rows[i][0] for i in (0, 2, 3, 5)}
    assert set(Outcome.objects.values_list("applicant__external_id", flat=True)) == written


def test_without_valid_only_the_same_file_is_rejected_and_writes_nothing(german_portfolio, write_csv, counts):
    header, rows = german_rows(6)
    rows[1][header.index("duration_in_month")] = "forever"
    before = counts()

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=write_csv("bad.csv", header, rows))

    assert job.status == ImportJob.STATUS_REJECTED
    assert "nothing was written" in job.message
    assert counts() == before


def test_parquet_applicants_import_with_features_protected_pii_and_outcomes(synthetic_portfolio, tmp_path):
    frame = generate_all(30, seed=2).applicants
    frame.loc[3, "employment_years"] = np.nan  # nullable: stored as None
    path = tmp_path / "applicants.parquet"
    frame.to_parquet(path)

    job = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)

    assert job.status == ImportJob.STATUS_SUCCEEDED, (job.message, job.errors)
    assert job.rows_created == 30
    first = Applicant.objects.get(external_id=frame.loc[0, "applicant_id"])
    assert first.features["income"] == frame.loc[0, "income"] and isinstance(first.features["income"], float)
    assert first.features["duration_months"] == frame.loc[0, "duration_months"]
    assert isinstance(first.features["duration_months"], int)
    assert first.features["home_ownership"] == frame.loc[0, "home_ownership"]
    assert first.protected_attributes == {"sex": frame.loc[0, "sex"], "age_band": frame.loc[0, "age_band"]}
    assert not {"full_name", "email", "sex", "defaulted"} & set(first.features)
    assert Applicant.objects.get(external_id=frame.loc[3, "applicant_id"]).features["employment_years"] is None
    pii = ApplicantPII.objects.get(applicant=first)
    assert pii.portfolio_id == synthetic_portfolio.pk
    assert frame.loc[0, "full_name"] not in pii.ciphertext  # stored encrypted
    data = pii_read(first)
    assert data["full_name"] == frame.loc[0, "full_name"] and data["date_of_birth"] == frame.loc[0, "date_of_birth"]
    assert ApplicantPII.objects.count() == 30
    assert Outcome.objects.filter(defaulted=True).count() == int((frame["defaulted"] == "yes").sum())
    assert Outcome.objects.get(applicant=first).observed_on == date(2026, 10, 1)

    again = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)
    assert (again.rows_created, again.rows_updated, again.rows_unchanged) == (0, 0, 30)


def test_a_csv_with_a_byte_order_mark_imports(german_portfolio, write_csv):
    header, rows = german_rows(10)

    job = import_file_run(
        portfolio=german_portfolio, kind="applicants", path=write_csv("bom.csv", header, rows, bom=True)
    )

    assert job.status == ImportJob.STATUS_SUCCEEDED, job.errors
    assert Applicant.objects.filter(external_id="GC-0001").exists()


def test_latin1_bytes_in_a_utf8_import_are_reported_by_row_and_latin1_encoding_accepts_them(
    synthetic_portfolio, write_csv, counts
):
    header, rows = synthetic_rows(3)
    rows[1][header.index("full_name")] = "José Núñez"
    path = write_csv("latin1.csv", header, rows, encoding="latin-1")
    before = counts()

    rejected = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)

    assert rejected.status == ImportJob.STATUS_REJECTED
    assert rejected.errors == [
        {"row": 3, "column": "full_name", "value": "Aaa� A��aa", "message": rejected.errors[0]["message"]}
    ]
    assert "undecodable" in rejected.errors[0]["message"]
    assert counts() == before

    accepted = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path, encoding="latin-1")

    assert accepted.status == ImportJob.STATUS_SUCCEEDED
    assert pii_read(Applicant.objects.get(external_id=rows[1][0]))["full_name"] == "José Núñez"


def test_an_unknown_encoding_is_refused_before_a_job_is_recorded(german_portfolio):
    with pytest.raises(IngestionError, match="encoding"):
        import_file_run(portfolio=german_portfolio, kind="applicants", path=GERMAN_CSV, encoding="klingon")
    assert not ImportJob.objects.exists()


@pytest.fixture
def synthetic_block(synthetic_portfolio, tmp_path):
    """200 synthetic applicants imported, with their history as a frame."""
    block = generate_all(200, seed=1)
    path = tmp_path / "applicants.csv"
    block.applicants.to_csv(path, index=False)
    job = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)
    assert job.status == ImportJob.STATUS_SUCCEEDED, job.errors
    return block


def test_history_round_trips_and_reimporting_it_from_parquet_changes_nothing(
    synthetic_portfolio, synthetic_block, tmp_path
):
    history = synthetic_block.history_frame()
    csv_path, parquet_path = tmp_path / "history.csv", tmp_path / "history.parquet"
    history.to_csv(csv_path, index=False)
    history.to_parquet(parquet_path)

    job = import_file_run(portfolio=synthetic_portfolio, kind="history", path=csv_path)

    assert job.status == ImportJob.STATUS_SUCCEEDED, (job.message, job.errors)
    assert job.rows_created == len(history) == 200 * 24
    stored = pd.DataFrame(
        RepaymentMonth.objects.values_list(
            "applicant__external_id", "month", "balance", "amount_paid", "days_past_due", "portfolio_id"
        ),
        columns=[*HISTORY_HEADER, "portfolio_id"],
    ).sort_values(["applicant_id", "month"], ignore_index=True)
    expected = history.sort_values(["applicant_id", "month"], ignore_index=True)
    assert (stored["applicant_id"] == expected["applicant_id"]).all()
    assert (stored["month"].astype(str) == expected["month"]).all()
    assert np.allclose(stored["balance"], expected["balance"], rtol=1e-6)
    assert np.allclose(stored["amount_paid"], expected["amount_paid"], rtol=1e-6)
    assert (stored["days_past_due"] == expected["days_past_due"]).all()
    assert (stored["portfolio_id"] == synthetic_portfolio.pk).all()

    again = import_file_run(portfolio=synthetic_portfolio, kind="history", path=parquet_path)

    assert again.status == ImportJob.STATUS_SUCCEEDED, again.errors
    assert (again.rows_created, again.rows_updated, again.rows_unchanged) == (0, 0, len(history))
    assert RepaymentMonth.objects.count() == len(history)


def test_history_months_are_stored_as_the_first_day_and_updates_are_counted(
    synthetic_portfolio, synthetic_block, write_csv
):
    ids = synthetic_block.applicants["applicant_id"]
    rows = [[ids[0], "2025-03", "100.5", "10", "0"], [ids[0], "2025-04-17", "90", "10", "30"]]
    import_file_run(portfolio=synthetic_portfolio, kind="history", path=write_csv("h1.csv", HISTORY_HEADER, rows))
    rows[1][4] = "60"

    job = import_file_run(portfolio=synthetic_portfolio, kind="history", path=write_csv("h2.csv", HISTORY_HEADER, rows))

    assert (job.rows_created, job.rows_updated, job.rows_unchanged) == (0, 1, 1)
    months = dict(RepaymentMonth.objects.values_list("month", "days_past_due"))
    assert months == {date(2025, 3, 1): 0, date(2025, 4, 1): 60}


def test_history_rows_of_unknown_applicants_and_bad_values_are_reported(
    synthetic_portfolio, synthetic_block, write_csv, counts
):
    known = synthetic_block.applicants["applicant_id"][0]
    rows = [
        [known, "2025-01", "100", "10", "0"],
        ["NOBODY", "2025-01", "100", "10", "0"],
        [known, "2025-01-01", "100", "10", "0"],  # the same month as row 2
        [known, "2025-02", "100", "10", "-30"],
        [known, "2025-13", "1e999", "", "0"],
    ]
    before = counts()

    job = import_file_run(portfolio=synthetic_portfolio, kind="history", path=write_csv("h.csv", HISTORY_HEADER, rows))

    assert job.status == ImportJob.STATUS_REJECTED
    assert errors_at(job) == {
        (3, "applicant_id"),
        (4, "month"),
        (5, "days_past_due"),
        (6, "month"),
        (6, "balance"),
        (6, "amount_paid"),
    }
    messages = {(e["row"], e["column"]): e["message"] for e in job.errors}
    assert "no applicant with this id" in messages[(3, "applicant_id")]
    assert "row 2" in messages[(4, "month")]
    assert "negative" in messages[(5, "days_past_due")]
    assert counts() == before


def test_history_with_other_columns_is_rejected(synthetic_portfolio, synthetic_block, write_csv):
    known = synthetic_block.applicants["applicant_id"][0]
    path = write_csv("h.csv", ["applicant_id", "month", "balance", "paid"], [[known, "2025-01", "1", "1"]])

    job = import_file_run(portfolio=synthetic_portfolio, kind="history", path=path, valid_only=True)

    assert job.status == ImportJob.STATUS_REJECTED
    assert {(1, "amount_paid"), (1, "days_past_due"), (1, "paid")} <= errors_at(job)
    assert not RepaymentMonth.objects.exists()


def test_outcomes_accept_flags_and_target_labels_and_report_unknown_applicants(german_portfolio, write_csv, counts):
    import_file_run(portfolio=german_portfolio, kind="applicants", path=GERMAN_CSV)
    header = ["applicant_id", "defaulted", "observed_on"]
    rows = [
        ["GC-0001", "1", "1995-01-01"],
        ["GC-0002", "no", "1995-01-01"],
        ["GC-0003", "TRUE", "1995-01-01"],
        ["GC-0004", "bad", "1995-01-01"],
        ["GC-0005", "good", "1995-01-01"],
    ]
    job = import_file_run(portfolio=german_portfolio, kind="outcomes", path=write_csv("o.csv", header, rows))

    assert job.status == ImportJob.STATUS_SUCCEEDED, job.errors
    observed = dict(
        Outcome.objects.filter(observed_on=date(1995, 1, 1)).values_list("applicant__external_id", "defaulted")
    )
    assert observed == {"GC-0001": True, "GC-0002": False, "GC-0003": True, "GC-0004": True, "GC-0005": False}

    before = counts()
    bad = [["GC-0001", "perhaps", "1995-01-01"], ["GHOST", "1", "1995-01-01"], ["GC-0002", "0", "1995-02-30"]]
    rejected = import_file_run(portfolio=german_portfolio, kind="outcomes", path=write_csv("o2.csv", header, bad))

    assert rejected.status == ImportJob.STATUS_REJECTED
    assert errors_at(rejected) == {(2, "defaulted"), (3, "applicant_id"), (4, "observed_on")}
    assert counts() == before


def test_duplicates_are_found_across_chunks_with_the_right_row_numbers(
    synthetic_portfolio, synthetic_block, write_csv, settings
):
    settings.IMPORT_CHUNK_ROWS = 7
    ids = synthetic_block.applicants["applicant_id"]
    rows = [[ids[i], "2025-01", "1", "1", "0"] for i in range(20)]
    rows.append([ids[3], "2025-01", "2", "2", "0"])  # row 22 repeats row 5, two chunks later
    rows.append([ids[4], "2025-01", "x", "2", "0"])  # row 23

    job = import_file_run(portfolio=synthetic_portfolio, kind="history", path=write_csv("h.csv", HISTORY_HEADER, rows))

    assert [(e["row"], e["column"]) for e in job.errors] == [(22, "month"), (23, "month"), (23, "balance")]
    assert "row 5" in job.errors[0]["message"] and "row 6" in job.errors[1]["message"]


def test_the_report_keeps_the_first_errors_and_counts_all(german_portfolio, write_csv, settings):
    settings.IMPORT_MAX_REPORTED_ERRORS = 3
    header, rows = german_rows(10)
    for row in rows:
        row[header.index("credit_amount")] = "lots"

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=write_csv("x.csv", header, rows))

    assert job.error_count == 10 and job.rows_invalid == 10
    assert [e["row"] for e in job.errors] == [2, 3, 4]


def test_a_row_with_too_many_fields_is_reported_by_row(german_portfolio, write_csv, counts):
    header, rows = german_rows(5)
    rows[2].append("surplus")
    before = counts()

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=write_csv("ragged.csv", header, rows))

    assert job.status == ImportJob.STATUS_REJECTED
    assert job.errors[0]["row"] == 4 and "23 fields" in job.errors[0]["message"]
    assert counts() == before

    rows = [list(r) for r in german_rows(3)[1]]
    rows[0].append("surplus")  # on the first data row pandas would silently drop it
    first = import_file_run(portfolio=german_portfolio, kind="applicants", path=write_csv("ragged1.csv", header, rows))
    assert first.status == ImportJob.STATUS_REJECTED and first.errors[0]["row"] == 2


@pytest.mark.parametrize(
    ("setting", "value", "needle"),
    [("IMPORT_MAX_ROWS", 5, "IMPORT_MAX_ROWS"), ("IMPORT_MAX_COLUMNS", 10, "IMPORT_MAX_COLUMNS")],
)
def test_row_and_column_limits_reject_the_file_with_a_clear_error(
    german_portfolio, settings, counts, setting, value, needle
):
    setattr(settings, setting, value)
    before = counts()

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=GERMAN_CSV)

    assert job.status == ImportJob.STATUS_REJECTED
    assert needle in job.errors[-1]["message"]
    assert counts() == before


def test_the_row_limit_applies_to_parquet_from_its_metadata(synthetic_portfolio, settings, tmp_path):
    settings.IMPORT_MAX_ROWS = 10
    path = tmp_path / "a.parquet"
    generate_all(11, seed=3).applicants.to_parquet(path)

    job = import_file_run(portfolio=synthetic_portfolio, kind="applicants", path=path)

    assert job.status == ImportJob.STATUS_REJECTED
    assert "11 rows" in job.errors[0]["message"] and "IMPORT_MAX_ROWS" in job.errors[0]["message"]


def test_a_file_over_the_size_limit_is_rejected_before_it_is_read(german_portfolio, settings, tmp_path):
    settings.IMPORT_MAX_FILE_MB = 1
    path = tmp_path / "big.csv"
    path.write_bytes(b"applicant_id\n" + b"x\n" * 600_000)

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path)

    assert job.status == ImportJob.STATUS_REJECTED
    assert "IMPORT_MAX_FILE_MB" in job.errors[0]["message"] and job.rows_total == 0


def test_an_unsupported_file_type_is_rejected(german_portfolio, tmp_path):
    path = tmp_path / "applicants.xlsx"
    path.write_bytes(b"PK")

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path)

    assert job.status == ImportJob.STATUS_REJECTED and ".parquet" in job.errors[0]["message"]


def test_a_gzipped_csv_imports(german_portfolio, tmp_path):
    path = tmp_path / "german.csv.gz"
    pd.read_csv(GERMAN_CSV, dtype=str, keep_default_na=False).head(50).to_csv(path, index=False)

    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=path)

    assert job.status == ImportJob.STATUS_SUCCEEDED and job.rows_created == 50


def test_a_new_schema_version_moves_the_portfolio_only_when_the_import_succeeds(german_portfolio, write_csv):
    document = copy.deepcopy(german_portfolio.schema.definition)
    document["version"] = 2
    document["columns"].append({"name": "branch", "role": "categorical", "categories": ["north", "south"]})
    v2 = schema_register(document=document)
    header, rows = german_rows(4)

    bad = write_csv("bad.csv", [*header, "branch"], [[*r, "west"] for r in rows])
    rejected = import_file_run(portfolio=german_portfolio, kind="applicants", path=bad, schema=v2)
    german_portfolio.refresh_from_db()
    assert rejected.status == ImportJob.STATUS_REJECTED and german_portfolio.schema_id != v2.pk

    good = write_csv("good.csv", [*header, "branch"], [[*r, "north"] for r in rows])
    job = import_file_run(portfolio=german_portfolio, kind="applicants", path=good, schema=v2)
    german_portfolio.refresh_from_db()
    assert job.status == ImportJob.STATUS_SUCCEEDED and job.schema_id == v2.pk
    assert german_portfolio.schema_id == v2.pk
    assert set(Applicant.objects.values_list("schema_id", flat=True)) == {v2.pk}
    assert Applicant.objects.get(external_id="GC-0001").features["branch"] == "north"


def test_a_failure_half_way_writes_nothing_and_marks_the_job_failed(
    synthetic_portfolio, synthetic_block, tmp_path, settings, monkeypatch, counts
):
    settings.IMPORT_CHUNK_ROWS = 1000
    path = tmp_path / "history.parquet"
    synthetic_block.history_frame().to_parquet(path)
    real_upsert = bulk.history_upsert
    calls = []

    def failing_upsert(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real_upsert(**kwargs)

    monkeypatch.setattr(bulk, "history_upsert", failing_upsert)
    before = counts()

    job = import_file_run(portfolio=synthetic_portfolio, kind="history", path=path)

    assert job.status == ImportJob.STATUS_FAILED and "disk on fire" in job.message
    assert len(calls) == 3
    assert counts() == before
    assert (job.rows_created, job.rows_updated, job.rows_unchanged) == (0, 0, 0)


def test_the_job_records_the_file_the_user_and_the_progress(german_portfolio, write_csv, settings):
    settings.IMPORT_CHUNK_ROWS = 4
    user = get_user_model().objects.create_user("ana", password="a-long-password-1")
    header, rows = german_rows(10)
    path = write_csv("ten.csv", header, rows)
    calls = []

    job = import_file_run(
        portfolio=german_portfolio,
        kind="applicants",
        path=path,
        created_by=user,
        progress=lambda done, total, phase: calls.append((done, total, phase)),
        file_name="upload.csv",
    )

    job.refresh_from_db()
    assert job.status == ImportJob.STATUS_SUCCEEDED
    assert job.file_name == "upload.csv" and job.file_size == path.stat().st_size
    assert job.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert job.created_by == user and job.started_at <= job.finished_at
    assert calls == [
        (4, 10, "validate"),
        (8, 10, "validate"),
        (10, 10, "validate"),
        (4, 10, "write"),
        (8, 10, "write"),
        (10, 10, "write"),
    ]


def test_a_schema_for_history_must_be_the_portfolios(german_portfolio, synthetic_schema, tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(",".join(HISTORY_HEADER) + "\n")
    with pytest.raises(IngestionError, match="applicant files only"):
        import_file_run(portfolio=german_portfolio, kind="history", path=path, schema=synthetic_schema)


def test_a_blank_line_is_one_problem_on_its_row(synthetic_portfolio, synthetic_block, tmp_path):
    known = synthetic_block.applicants["applicant_id"][0]
    path = tmp_path / "h.csv"
    path.write_text(",".join(HISTORY_HEADER) + f"\n{known},2025-01,1,1,0\n\n{known},2025-02,1,1,0\n")

    job = import_file_run(portfolio=synthetic_portfolio, kind="history", path=path, valid_only=True)

    assert job.errors == [{"row": 3, "column": "applicant_id", "value": "", "message": "the row is blank"}]
    assert job.status == ImportJob.STATUS_SUCCEEDED and RepaymentMonth.objects.count() == 2
