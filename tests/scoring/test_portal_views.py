"""The analyst portal's pages, through Django's test client (the browser tests in
tests/browser/ drive the same pages in Chromium)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from scoring.models import AuditEvent, ImportJob, ModelVersion, Score
from scoring.services.ingestion import import_job_run
from scoring.services.monitoring import promotion_blockers
from scoring.services.pii import pii_read
from scoring.services.training import model_version_create, model_version_train
from tests.scoring.portal_world import FAST, PASSWORD, bad_applicants_csv, portal_world

pytestmark = pytest.mark.django_db


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(tmp_path):
    return portal_world(tmp_path)


@pytest.fixture
def bare_world(tmp_path):
    return portal_world(tmp_path, champion=False)


def test_anonymous_visitors_get_the_landing_page_and_are_sent_to_log_in(bare_world):
    client = Client()
    landing = client.get("/")
    assert landing.status_code == 200 and b'href="/login/"' in landing.content
    response = client.get("/applicants/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/applicants/")
    response = client.post("/login/", {"username": "analyst_a", "password": PASSWORD, "next": "/applicants/"})
    assert response.status_code == 302 and response["Location"] == "/applicants/"
    page = client.get("/applicants/")
    assert page.status_code == 200 and b"Alpha book" in page.content
    assert client.post("/logout/").status_code == 302
    assert client.get("/applicants/").status_code == 302


def test_the_navigation_offers_what_the_role_may_do(bare_world):
    users = bare_world.users
    analyst = client_of(users["analyst_a"]).get("/imports/").content.decode()
    assert "Upload a file" in analyst and "Audit log" not in analyst
    developer = client_of(users["developer"]).get("/models/").content.decode()
    assert (
        "Train a model" in developer
        and "Upload a file" not in client_of(users["developer"]).get("/imports/").content.decode()
    )
    auditor = client_of(users["auditor"]).get("/").content.decode()
    assert 'href="/audit/"' in auditor
    assert client_of(users["analyst_a"]).get("/audit/").status_code == 404
    # An upload by someone without the import grant is refused.
    response = client_of(users["developer"]).post("/imports/", {})
    assert response.status_code == 403


def test_applicant_list_searches_filters_sorts_and_caps_the_page_size(world):
    client = client_of(world.users["analyst_a"])
    everyone = client.get("/applicants/", {"portfolio": world.alpha.pk})
    assert everyone.context["page_obj"].paginator.count == 600
    found = client.get("/applicants/", {"search": world.applicant.external_id})
    assert [a.pk for a in found.context["page_obj"]] == [world.applicant.pk]
    declined = client.get("/applicants/", {"decision": "decline", "page_size": 100})
    rows = list(declined.context["page_obj"])
    assert rows and {a.latest_decision for a in rows} == {"decline"}
    ranged = client.get("/applicants/", {"score_min": 560, "score_max": 600, "sort": "-score", "page_size": 100})
    scores = [a.latest_score for a in ranged.context["page_obj"]]
    assert scores and all(560 <= s <= 600 for s in scores) and scores == sorted(scores, reverse=True)
    # A page size outside the offered choices falls back to the default instead of paging everything.
    huge = client.get("/applicants/", {"page_size": 100000})
    assert len(huge.context["page_obj"]) == 25
    event = AuditEvent.objects.filter(action="applicant.list", actor_username="analyst_a").order_by("-id").first()
    assert event is not None and event.portfolio_id == world.alpha.pk


def test_applicant_page_shows_reasons_chart_data_and_pii_only_to_the_pii_grant(world):
    client = client_of(world.users["analyst_a"])
    response = client.get(f"/applicants/{world.applicant.pk}/")
    html = response.content.decode()
    latest = Score.objects.filter(applicant=world.applicant).order_by("-created_at", "-id").first()
    assert response.status_code == 200
    assert latest.reasons and latest.reasons[0]["text"] in html
    assert 'id="waterfall-data"' in html and 'id="history-data"' in html and 'data-chart="waterfall"' in html
    waterfall = response.context["waterfall"]
    # The bars run from the base to the applicant's log-odds, adding up exactly.
    assert waterfall["bars"][0][1] == pytest.approx(latest.base_log_odds, abs=1e-6)
    assert waterfall["log_odds"] == pytest.approx(latest.base_log_odds + sum(latest.contributions), abs=1e-5)
    # Bars under the schema's labels ("Income", not the column key income).
    assert "history:" in "".join(waterfall["labels"]) or "Income" in waterfall["labels"]
    # The senior analyst's grant includes the PII: shown in clear, and audited as pii.view.
    clear = pii_read(world.applicant)
    assert response.context["pii_masked"] is False and clear["national_id"] in html
    assert AuditEvent.objects.filter(action="pii.view", object_ids=[world.applicant.pk]).exists()
    # The validator sees the applicant but not the PII: masked, nothing of it in clear.
    masked = client_of(world.users["validator"]).get(f"/applicants/{world.applicant.pk}/")
    page = masked.content.decode()
    assert masked.context["pii_masked"] is True and masked.context["pii"]
    assert clear["national_id"] not in page and clear["email"] not in page and clear["full_name"] not in page
    assert AuditEvent.objects.filter(action="applicant.view", object_ids=[world.applicant.pk]).exists()


def test_whatif_scores_changed_values_without_saving_and_is_audited(world):
    client = client_of(world.users["analyst_a"])
    url = f"/applicants/{world.applicant.pk}/whatif/"
    scores_before = Score.objects.count()
    same = client.post(url, world.applicant.features).json()
    latest = Score.objects.filter(applicant=world.applicant).order_by("-created_at", "-id").first()
    assert same["score"] == pytest.approx(latest.score, abs=1e-6) and same["changed_features"] == []
    worse = client.post(url, {**world.applicant.features, "debt_to_income": 3.5, "loan_amount": 90000}).json()
    assert worse["changed_features"] == ["debt_to_income", "loan_amount"]
    assert worse["pd"] > same["pd"] and worse["reasons"]
    assert Score.objects.count() == scores_before  # nothing saved
    bad = client.post(url, {**world.applicant.features, "income": -1})
    assert bad.status_code == 400 and "income" in bad.json()["errors"]
    assert AuditEvent.objects.filter(action="applicant.whatif", object_ids=[world.applicant.pk]).count() == 2
    # Viewing is not scoring: the developer (view + train) may not use the panel.
    assert client_of(world.users["developer"]).post(url, world.applicant.features).status_code == 403


def test_an_upload_queues_an_import_and_its_page_shows_the_validation_report(
    bare_world, tmp_path, django_capture_on_commit_callbacks
):
    client = client_of(bare_world.users["analyst_a"])
    data = bad_applicants_csv(tmp_path / "upload.csv", bare_world.alpha).read_bytes()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/imports/",
            {"portfolio": bare_world.alpha.pk, "kind": "applicants", "encoding": "utf-8",
             "file": SimpleUploadedFile("upload.csv", data, content_type="text/csv")},
        )  # fmt: skip
    job = ImportJob.objects.filter(file_name="upload.csv").get()
    assert response.status_code == 302 and response["Location"] == f"/imports/{job.pk}/"
    assert len(callbacks) == 1 and job.status == ImportJob.STATUS_PENDING
    pending = client.get(f"/imports/{job.pk}/").content.decode()
    assert 'data-poll-url="/imports/' in pending
    # The worker's part, in this process: run the job from the saved upload.
    saved = next(Path(settings.MEDIA_ROOT, "imports").glob("*/upload.csv"))
    import_job_run(job_id=job.pk, path=saved)
    assert client.get(f"/imports/{job.pk}/status/").json()["status"] == "rejected"
    done = client.get(f"/imports/{job.pk}/").content.decode()
    assert 'id="validation-report"' in done and "not one of the declared categories" in done
    assert "data-poll-url" not in done
    assert 'id="report-summary"' in done and f"/imports/{job.pk}/report.csv" in done
    report = client.get(f"/imports/{job.pk}/report.csv")
    assert report.status_code == 200 and b"not one of the declared categories" in b"".join(report.streaming_content)
    assert not saved.exists()  # the upload went with the import
    assert client_of(bare_world.users["analyst_b"]).get(f"/imports/{job.pk}/report.csv").status_code == 404
    proposed = client.post(
        "/imports/infer-schema/",
        {"portfolio": bare_world.alpha.pk, "file": SimpleUploadedFile("upload.csv", data), "encoding": "utf-8"},
    )
    assert proposed.status_code == 200 and proposed.json()["columns"][0]["role"] == "id"


def test_four_eyes_errors_are_shown_and_the_validator_approves_and_promotes(bare_world):
    validator = bare_world.users["validator"]
    from scoring.services.access import portfolio_access_grant

    portfolio_access_grant(portfolio=bare_world.alpha, grantee=validator, role="model developer")
    own = model_version_train(
        model_version_id=model_version_create(
            portfolio=bare_world.alpha, kind="mlp", hyperparameters=FAST, requested_by=validator
        ).pk
    )
    client = client_of(validator)
    response = client.post(f"/models/{own.pk}/approve/", follow=True)
    assert "Four eyes" in response.content.decode()
    own.refresh_from_db()
    assert own.status == ModelVersion.STATUS_TRAINED
    page = client.get(f"/models/{own.pk}/").content.decode()
    for chart in ("roc", "ks", "calibration", "gains", "lift"):
        assert f'data-chart="{chart}"' in page
    other = model_version_train(
        model_version_id=model_version_create(
            portfolio=bare_world.alpha, kind="mlp", hyperparameters=FAST, requested_by=bare_world.users["developer"]
        ).pk
    )
    client.post(f"/models/{other.pk}/approve/")
    blocked = promotion_blockers(model_version=other)  # a failed stability or fairness report, if any
    response = client.post(f"/models/{other.pk}/promote/", follow=True)
    other.refresh_from_db()
    if blocked:
        assert "Promotion blocked" in response.content.decode() and other.status == ModelVersion.STATUS_APPROVED
        client.post(f"/models/{other.pk}/promote/", {"override_reason": "Fairness reviewed by the committee"})
        other.refresh_from_db()
        assert other.promotion_override_reason == "Fairness reviewed by the committee"
    assert other.status == ModelVersion.STATUS_CHAMPION
    # The analyst sees the model but has no approve button and may not post one.
    analyst = client_of(bare_world.users["analyst_a"])
    assert f"/models/{own.pk}/approve/" not in analyst.get(f"/models/{own.pk}/").content.decode()
    assert analyst.post(f"/models/{own.pk}/approve/").status_code == 403


def test_exports_and_the_audit_log_page_are_audited(world):
    analyst = client_of(world.users["analyst_a"])
    response = analyst.get(f"/runs/{world.run.pk}/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response.status_code == 200 and len(rows) == 601
    assert AuditEvent.objects.filter(action="export.create", object_ids=[world.run.pk]).exists()
    assert analyst.get(f"/runs/{world.run.pk}/export.xlsx").status_code == 404
    auditor = client_of(world.users["auditor"])
    page = auditor.get("/audit/", {"action": "export.create"})
    assert page.status_code == 200 and "export.create" in page.content.decode()
    exported = auditor.get("/audit/export.csv", {"action": "export.create"})
    lines = list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert lines[0][:4] == ["id", "occurred_at", "actor_username", "action"] and lines[1][3] == "export.create"
    assert AuditEvent.objects.filter(action="audit.export", actor_username="auditor").exists()
