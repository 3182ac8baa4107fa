"""Each audited action leaves its event (ids only), and four eyes holds: an
unapproved model never scores, in real time or in a batch."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from scoring.models import AuditEvent, BatchRun, ModelVersion
from scoring.services.access import portfolio_access_grant, portfolio_access_revoke
from scoring.services.batch import batch_run_cancel, batch_run_create, batch_run_resume
from scoring.services.exports import export_csv_lines
from scoring.services.ingestion import import_job_create
from scoring.services.registry import RegistryError, model_version_approve, model_version_promote
from scoring.services.scoring import ScoringError, score_realtime
from scoring.services.training import model_version_create
from tests.factories import UserFactory, synthetic_portfolio

pytestmark = pytest.mark.django_db


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.fixture
def book():
    return synthetic_portfolio(n=40, seed=3)


@pytest.fixture
def cast(book):
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    portfolio_access_grant(portfolio=book, grantee=developer, role="model developer")
    portfolio_access_grant(portfolio=book, grantee=validator, role="model validator")
    return developer, validator


def trained_version(book, developer) -> ModelVersion:
    """A version as training leaves it (the four-eyes checks read its status and trainer only)."""
    version = model_version_create(portfolio=book, kind="mlp", requested_by=developer)
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.STATUS_TRAINED)
    version.refresh_from_db()
    return version


def test_grants_and_revocations_are_recorded_with_who_and_what():
    book = synthetic_portfolio(n=5, seed=1)
    admin, analyst = UserFactory(username="admin"), UserFactory(username="ana")
    portfolio_access_grant(portfolio=book, grantee=analyst, role="analyst", actor=admin)
    portfolio_access_revoke(portfolio=book, grantee=analyst, perms=["score_portfolio"], actor=admin)
    role, grant = events("permission.grant")
    assert (role.actor_id, role.object_type, role.object_ids, role.details) == (
        admin.pk,
        "user",
        [analyst.pk],
        {"role": "analyst"},
    )
    assert grant.portfolio_id == book.pk and grant.details == {"perms": ["view_portfolio_data", "score_portfolio"]}
    (revoke,) = events("permission.revoke")
    assert (revoke.actor_id, revoke.details) == (admin.pk, {"perms": ["score_portfolio"]})


def test_training_is_recorded_with_the_requester(book, cast):
    developer, _ = cast
    version = model_version_create(portfolio=book, kind="mlp", seed=5, requested_by=developer)
    (event,) = events("model.train")
    assert (event.actor_id, event.portfolio_id, event.object_ids) == (developer.pk, book.pk, [version.pk])
    assert event.details["seed"] == 5 and event.details["kind"] == "mlp"


def test_every_four_eyes_step_is_recorded_refusals_included(book, cast):
    developer, validator = cast
    portfolio_access_grant(portfolio=book, grantee=developer, role="model validator")  # validates others' models
    version = trained_version(book, developer)
    with pytest.raises(RegistryError, match="Four eyes"):
        model_version_approve(version=version, user=developer)
    with pytest.raises(RegistryError, match="approved"):
        model_version_promote(version=version, user=validator)
    version = model_version_approve(version=version, user=validator)
    denied, approved = events("model.approve")
    assert (denied.outcome, denied.actor_id) == ("denied", developer.pk)
    assert "Four eyes" in denied.details["reason"]
    assert (approved.outcome, approved.actor_id, approved.object_ids) == ("success", validator.pk, [version.pk])
    (refused,) = events("model.promote")
    assert refused.outcome == "denied" and "approved" in refused.details["reason"]


def test_an_unapproved_model_never_scores_in_real_time_or_in_a_batch(book, cast):
    developer, validator = cast
    version = trained_version(book, developer)
    applicant = book.applicants.first()
    with pytest.raises(ScoringError, match="no champion"):
        score_realtime(portfolio=book, applicant=applicant, requested_by=validator)
    with pytest.raises(ScoringError, match="only approved models score"):
        batch_run_create(portfolio=book, model_version=version, requested_by=validator)
    with pytest.raises(ScoringError):  # nor as the nightly run's champion
        batch_run_create(portfolio=book, requested_by=None, trigger="nightly")
    assert not BatchRun.objects.exists() and not events("score.create") and not events("batch.create")
    with pytest.raises(ScoringError, match="retired"):
        ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.STATUS_RETIRED)
        version.refresh_from_db()
        batch_run_create(portfolio=book, model_version=version)


def test_batch_create_cancel_resume_and_export_are_recorded(book, cast, django_capture_on_commit_callbacks):
    developer, validator = cast
    version = trained_version(book, developer)
    version = model_version_approve(version=version, user=validator)
    run = batch_run_create(portfolio=book, model_version=version, requested_by=validator, chunk_size=25)
    batch_run_cancel(run=run, actor=validator)
    with django_capture_on_commit_callbacks(execute=False):
        batch_run_resume(run=run, actor=validator)
    (created,) = events("batch.create")
    assert (created.actor_id, created.object_ids, created.details["rows"]) == (validator.pk, [run.pk], 40)
    assert events("batch.cancel")[0].details == {"status": "cancelled"}
    assert events("batch.resume")[0].actor_id == validator.pk
    "".join(export_csv_lines(run, actor=validator))  # no scores yet: a header only
    (export,) = events("export.create")
    assert (export.actor_id, export.details, export.outcome) == (validator.pk, {"rows": 0, "format": "csv"}, "success")


def test_an_export_abandoned_by_its_client_is_recorded_as_such(book, cast):
    developer, validator = cast
    version = trained_version(book, developer)
    version = model_version_approve(version=version, user=validator)
    run = batch_run_create(portfolio=book, model_version=version, requested_by=validator)
    stream = export_csv_lines(run, actor=validator)
    next(stream)
    stream.close()  # the client went away
    assert events("export.create")[0].outcome == "failure"


def test_an_import_is_recorded(book, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("applicant_id,month,balance,amount_paid,days_past_due\n")
    user = UserFactory()
    job = import_job_create(portfolio=book, kind="history", path=path, created_by=user)
    (event,) = events("import.create")
    assert (event.actor_id, event.object_ids, event.details["kind"]) == (user.pk, [job.pk], "history")


def test_the_log_of_all_this_verifies(book, cast, append_only):
    developer, validator = cast
    version = trained_version(book, developer)
    version = model_version_approve(version=version, user=validator)
    call_command("verify_audit_log", "--no-checkpoint")
