"""PII at rest: after a real import, a plain dump of the database holds no
plaintext personal data (pg_dump on PostgreSQL; the database files on SQLite)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from django.db import connection

from models.synthetic import generate_all
from scoring.models import Applicant
from scoring.services.demo import DEMO_DIR, portfolio_with_schema
from scoring.services.ingestion import import_file_run
from scoring.services.pii import pii_read

pytestmark = pytest.mark.django_db(transaction=True)

# Strings that occur nowhere else: any hit in a dump is the plaintext leaking.
CANARIES = {
    "full_name": "Zebulon Quartermaine-Canary",
    "national_id": "CANARY-884210573",
    "email": "zebulon.canary.7731@example.org",
    "phone": "+44 7700 900731",
    "address": "17 Canarywharf Lane, Kirkwall",
    "date_of_birth": "1971-03-29",
}


def _database_dump() -> bytes:
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            pytest.skip("pg_dump is not installed")
        command = [pg_dump, "--data-only", "-h", settings["HOST"] or "127.0.0.1", "-p", str(settings["PORT"] or 5432)]
        command += ["-U", settings["USER"], settings["NAME"]]
        return subprocess.run(command, check=True, capture_output=True).stdout
    # The raw bytes of the database and its write-ahead log, free pages included. Read by a
    # child process: closing a file descriptor of the database in this process would drop the
    # POSIX locks SQLite holds on it and let the worker processes of later tests corrupt it.
    files = [f"{settings['NAME']}{suffix}" for suffix in ("", "-wal", "-journal")]
    return subprocess.run(["cat", *(f for f in files if os.path.exists(f))], check=True, capture_output=True).stdout


def test_a_database_dump_after_an_import_holds_no_plaintext_pii(tmp_path):
    portfolio = portfolio_with_schema(name="Canary book", schema_file=DEMO_DIR / "synthetic.schema.json")
    frame = generate_all(20, seed=9).applicants
    for column, value in CANARIES.items():
        frame.loc[7, column] = value
    path = tmp_path / "applicants.csv"
    frame.to_csv(path, index=False)

    job = import_file_run(portfolio=portfolio, kind="applicants", path=path)
    assert job.status == "succeeded", job.message

    # The canary really went in: the service reads it back in clear.
    applicant = Applicant.objects.get(portfolio=portfolio, external_id=frame.loc[7, "applicant_id"])
    assert pii_read(applicant) == CANARIES

    dump = _database_dump()
    assert frame.loc[7, "applicant_id"].encode() in dump  # the dump does hold the applicant's other data
    for column, value in CANARIES.items():
        assert value.encode() not in dump, f"{column} is stored in plaintext"
