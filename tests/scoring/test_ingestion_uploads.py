"""Uploaded files live only while their import runs: PII is stored only encrypted."""

import stat
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from models.synthetic import generate_all
from scoring.models import Applicant, ImportJob
from scoring.services.ingestion import import_job_create, import_job_run, import_upload_store
from scoring.services.pii import applicant_erase

pytestmark = pytest.mark.django_db

CANARY = "Zebulon Uploadcanary-Quartermaine"


def _folder_holds(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_an_upload_is_private_while_pending_and_gone_after_the_import_and_the_erasure(
    synthetic_portfolio, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    frame = generate_all(12, seed=3).applicants
    frame.loc[4, "full_name"] = CANARY
    upload = SimpleUploadedFile("applicants.csv", frame.to_csv(index=False).encode())

    path = import_upload_store(upload=upload)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    job = import_job_create(portfolio=synthetic_portfolio, kind="applicants", path=path)
    assert _folder_holds(settings.MEDIA_ROOT, CANARY.encode())  # the pending upload, and nothing else

    done = import_job_run(job_id=job.pk, path=path)

    assert done.status == ImportJob.STATUS_SUCCEEDED
    assert not path.exists() and not path.parent.exists()
    assert _folder_holds(settings.MEDIA_ROOT, CANARY.encode()) == []
    applicant = Applicant.objects.get(external_id=frame.loc[4, "applicant_id"])
    applicant_erase(applicant=applicant)
    assert _folder_holds(settings.MEDIA_ROOT, CANARY.encode()) == []


def test_a_rejected_import_and_a_vanished_job_leave_no_upload(synthetic_portfolio, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    path = import_upload_store(upload=SimpleUploadedFile("bad.csv", b"applicant_id,nonsense\nA1,x\n"))
    job = import_job_create(portfolio=synthetic_portfolio, kind="applicants", path=path)
    assert import_job_run(job_id=job.pk, path=path).status == ImportJob.STATUS_REJECTED
    assert not path.exists()

    path = import_upload_store(upload=SimpleUploadedFile("late.csv", b"applicant_id\nA1\n"))
    job = import_job_create(portfolio=synthetic_portfolio, kind="applicants", path=path)
    ImportJob.objects.filter(pk=job.pk).delete()
    assert import_job_run(job_id=job.pk, path=path) is None and not path.exists()


def test_a_file_given_to_the_command_is_never_deleted(synthetic_portfolio, tmp_path):
    path = tmp_path / "mine.csv"
    generate_all(5, seed=1).applicants.to_csv(path, index=False)
    job = import_job_create(portfolio=synthetic_portfolio, kind="applicants", path=path)
    assert import_job_run(job_id=job.pk, path=path).status == ImportJob.STATUS_SUCCEEDED
    assert path.exists()
