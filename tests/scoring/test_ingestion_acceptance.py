"""Issue 13's acceptance: a raw file shaped like the SBA loan file goes infer_schema ->
reviewed schema -> import, every valid row in, the report summarising every problem."""

import json

import pytest
from django.core.management import call_command

from models.synthetic_files import sba_like_frame
from scoring.models import Applicant, ImportJob, Outcome, Portfolio
from scoring.services.ingestion import import_file_run
from scoring.services.pii import pii_read
from scoring.services.schemas import schema_register

pytestmark = pytest.mark.django_db

ROWS = 3000


@pytest.fixture
def raw_file(tmp_path):
    frame = sba_like_frame(ROWS, seed=5)
    frame.loc[10, "ApprovalFY"] = "1976A"  # at least one, wherever the generator put others
    frame.loc[20, "Name"] = "Acme\x00 Holdings"
    path = tmp_path / "SBAnational.csv"
    frame.to_csv(path, index=False)
    return frame, path


def test_a_raw_sba_like_file_goes_from_inference_to_a_full_import(raw_file, tmp_path, capsys):
    frame, path = raw_file
    out = tmp_path / "proposed.json"
    call_command("infer_schema", str(path), "--out", str(out), "--name", "sba")
    proposed = json.loads(out.read_text())
    columns = {c["name"]: c for c in proposed["columns"]}

    # What inference found on its own
    assert columns["LoanNr_ChkDgt"]["role"] == "id"
    assert columns["Name"]["role"] == "pii" and columns["Zip"]["role"] == "pii"
    assert columns["DisbursementGross"] == {
        "name": "DisbursementGross", "role": "numeric", "type": "money",
        "currency": ["$"], "thousands": ",", "decimal": ".",
    }  # fmt: skip
    assert columns["ApprovalDate"]["type"] == "date" and columns["ApprovalDate"]["formats"] == ["%d-%b-%y"]
    assert proposed["application_date"] == "ApprovalDate"
    assert columns["ApprovalFY"]["type"] == "integer"  # "1976A" is an odd cell, not a text column
    assert columns["NAICS"]["unseen"] == "other" and len(columns["NAICS"]["categories"]) == 50
    assert columns["MIS_Status"]["role"] == "target" and columns["MIS_Status"]["positive_label"] == "CHGOFF"
    assert "review" not in proposed

    # The one review: the documented Y/N of RevLineCr, anything else counted as "other"
    columns["RevLineCr"].update(categories=["Y", "N"], unseen="other")
    columns["ApprovalDate"]["two_digit_year_pivot"] = 2014
    schema = schema_register(document=proposed)
    portfolio = Portfolio.objects.create(name="sba", schema=schema)

    job = import_file_run(portfolio=portfolio, kind="applicants", path=path, valid_only=True)

    bad_years = set(frame.index[frame["ApprovalFY"] == "1976A"])
    invalid = bad_years | {20}
    assert job.status == ImportJob.STATUS_SUCCEEDED, job.message
    assert job.rows_invalid == len(invalid) and job.rows_created == ROWS - len(invalid)
    assert Applicant.objects.filter(portfolio=portfolio).count() == ROWS - len(invalid)
    valid = frame.drop(index=sorted(invalid))
    unlabelled = valid[valid["MIS_Status"] == ""]
    assert len(unlabelled) > 20
    assert Outcome.objects.filter(portfolio=portfolio).count() == len(valid) - len(unlabelled)
    assert not Outcome.objects.filter(applicant__external_id__in=unlabelled["LoanNr_ChkDgt"].tolist()).exists()

    # Money and dates stored as values; the PII only encrypted
    first = Applicant.objects.get(portfolio=portfolio, external_id=frame.loc[0, "LoanNr_ChkDgt"])
    assert first.features["DisbursementGross"] == float(frame.loc[0, "DisbursementGross"].strip("$ ").replace(",", ""))
    year = frame.loc[0, "ApprovalDate"].rsplit("-", 1)[1]
    assert first.features["ApprovalDate"].startswith("19" if int(year) > 14 else "20")
    assert pii_read(first)["Name"] == frame.loc[0, "Name"]

    # The report: every problem by column, for the whole file
    summary = {(e["severity"], e["column"], e["problem"]): e for e in job.summary}
    years = next(e for (sev, col, _), e in summary.items() if sev == "error" and col == "ApprovalFY")
    assert years["count"] == len(bad_years) and years["examples"][0]["value"] == "1976A"
    nul = next(e for (sev, col, problem), e in summary.items() if col == "Name" and "NUL" in problem)
    assert nul["count"] == 1 and nul["examples"] == [{"row": 22, "value": "Aaaa\\0 Aaaaaaaa"}]
    others = summary[("warning", "RevLineCr", "not a declared category: stored as 'other'")]
    assert others["count"] == int((~valid["RevLineCr"].isin(["Y", "N"])).sum())
    assert job.warning_count >= others["count"]
    assert {e["column"] for e in job.summary} == {"ApprovalFY", "Name", "RevLineCr", "NAICS"}
