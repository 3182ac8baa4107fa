"""Validation notes and rejection: a rejected version is never approved, promoted,
restored, scored or used as a challenger afterwards, whatever the entry point."""

import pytest
from rest_framework.test import APIClient

from scoring.audit import audit_log_verify
from scoring.models import AuditEvent, ModelVersion, ValidationNote
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import BatchError, batch_run_create
from scoring.services.errors import ForbiddenError
from scoring.services.registry import (
    RegistryError,
    model_version_approve,
    model_version_promote,
    model_version_reject,
    model_version_restore,
)
from scoring.services.validation import ValidationNoteInvalid, validation_note_add
from tests.factories import PortfolioFactory, UserFactory


@pytest.fixture
def book(db):
    portfolio = PortfolioFactory(name="validation")
    validator, developer, analyst = (
        UserFactory(username="val"),
        UserFactory(username="dev"),
        UserFactory(username="ana"),
    )
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="model developer")
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    champion = ModelVersion.objects.create(
        portfolio=portfolio, version=1, kind="mlp", status="champion", schema=portfolio.schema, trained_by=developer
    )
    candidate = ModelVersion.objects.create(
        portfolio=portfolio, version=2, kind="mlp", status="trained", schema=portfolio.schema, trained_by=developer
    )
    return {"portfolio": portfolio, "validator": validator, "developer": developer, "analyst": analyst,
            "champion": champion, "candidate": candidate}  # fmt: skip


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_rejected_version_is_never_approved_promoted_or_restored_by_the_service(book):
    validator, candidate = book["validator"], book["candidate"]
    rejected = model_version_reject(version=candidate, user=validator, reason="Below the baseline on 2026-Q3.")
    assert (rejected.status, rejected.rejected_by, rejected.rejection_reason) == (
        "rejected",
        validator,
        "Below the baseline on 2026-Q3.",
    )
    assert rejected.rejected_at is not None
    with pytest.raises(RegistryError, match="rejected"):
        model_version_approve(version=candidate, user=validator)
    with pytest.raises(RegistryError, match="rejected"):
        model_version_promote(version=candidate, user=validator, override_reason="anyway")
    with pytest.raises(RegistryError, match="rejected"):
        model_version_restore(version=candidate, user=validator, reason="bring it back")
    with pytest.raises(RegistryError, match="rejected"):
        model_version_reject(version=candidate, user=validator, reason="again")
    with pytest.raises(BatchError, match="only an approved model can be a challenger"):
        batch_run_create(portfolio=book["portfolio"], challenger=candidate)
    candidate.refresh_from_db()
    assert candidate.status == "rejected"


def test_an_approved_version_rejected_later_can_no_longer_be_promoted(book):
    validator, candidate = book["validator"], book["candidate"]
    model_version_approve(version=candidate, user=validator)
    model_version_reject(version=candidate, user=validator, reason="Fairness finding after approval.")
    with pytest.raises(RegistryError, match="Only an approved model can become champion; this one is rejected"):
        model_version_promote(version=candidate, user=validator)


def test_rejection_needs_a_reason_a_validator_and_a_version_that_is_not_the_champion(book):
    validator, developer, candidate, champion = (
        book["validator"],
        book["developer"],
        book["candidate"],
        book["champion"],
    )
    with pytest.raises(RegistryError, match="needs a reason"):
        model_version_reject(version=candidate, user=validator, reason="  ")
    with pytest.raises(RegistryError, match="Only a validator"):
        model_version_reject(version=candidate, user=developer, reason="I do not like it")
    with pytest.raises(RegistryError, match="champion cannot be rejected"):
        model_version_reject(version=champion, user=validator, reason="old")
    assert ModelVersion.objects.get(pk=candidate.pk).status == "trained"
    denied = AuditEvent.objects.filter(action="model.reject", outcome="denied")
    assert denied.count() == 3


def test_rejection_is_audited_in_the_hash_chain_with_its_reason(book):
    model_version_reject(version=book["candidate"], user=book["validator"], reason="Unstable CSI on income.")
    event = AuditEvent.objects.get(action="model.reject", outcome="success")
    assert event.details == {"status": "rejected", "reason": "Unstable CSI on income."}
    assert event.object_ids == [book["candidate"].pk] and event.actor_id == book["validator"].pk
    result = audit_log_verify()
    assert result.ok and result.events_checked >= 1


def test_notes_are_stored_with_author_and_time_and_audited_by_hash(book):
    validator, candidate = book["validator"], book["candidate"]
    note = validation_note_add(version=candidate, user=validator, text="  Reproduced test AUC 0.781.  ")
    assert (note.text, note.author, note.model_version) == ("Reproduced test AUC 0.781.", validator, candidate)
    assert note.created_at is not None
    event = AuditEvent.objects.get(action="model.note")
    assert event.details["note"] == note.pk and len(event.details["text_sha256"]) == 64
    with pytest.raises(ValidationNoteInvalid):
        validation_note_add(version=candidate, user=validator, text=" ")
    with pytest.raises(ForbiddenError):
        validation_note_add(version=candidate, user=book["developer"], text="mine is fine")
    assert ValidationNote.objects.count() == 1


def test_the_api_rejects_and_takes_notes_and_shows_them_on_the_version(book):
    candidate = book["candidate"]
    validator = api_as(book["validator"])
    response = validator.post(f"/api/v1/models/{candidate.pk}/notes/", {"text": "Checked PSI."}, format="json")
    assert response.status_code == 201 and response.json()["author_username"] == "val"
    response = validator.post(f"/api/v1/models/{candidate.pk}/reject/", {"reason": "Below baseline."}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["rejection_reason"]) == ("rejected", "Below baseline.")
    detail = api_as(book["analyst"]).get(f"/api/v1/models/{candidate.pk}/").json()
    assert [n["text"] for n in detail["validation_notes"]] == ["Checked PSI."]
    assert detail["rejected_by"] == book["validator"].pk
    # Every later step answers 409, by the same rule.
    assert validator.post(f"/api/v1/models/{candidate.pk}/approve/").status_code == 409
    assert validator.post(f"/api/v1/models/{candidate.pk}/promote/", {}, format="json").status_code == 409
    # No reason: 400; not a validator: 403.
    assert validator.post(f"/api/v1/models/{book['champion'].pk}/reject/", {}, format="json").status_code == 400
    developer = api_as(book["developer"])
    assert developer.post(f"/api/v1/models/{candidate.pk}/notes/", {"text": "x"}, format="json").status_code == 403


def test_the_portal_rejects_and_takes_notes_and_shows_them(book, client):
    candidate = book["candidate"]
    client.force_login(book["validator"])
    page = client.get(f"/models/{candidate.pk}/").content.decode()
    assert "Reject this version" in page and "Add note" in page
    client.post(f"/models/{candidate.pk}/notes/", {"text": "Out-of-time sample reproduces the AUC."})
    response = client.post(f"/models/{candidate.pk}/reject/", {"reason": "Below the logistic baseline."}, follow=True)
    page = response.content.decode()
    assert "Model version 2 rejected." in page
    assert "Out-of-time sample reproduces the AUC." in page and "Below the logistic baseline." in page
    assert "Reject this version" not in page and "Approve</button>" not in page
    response = client.post(f"/models/{candidate.pk}/approve/", follow=True)
    assert "Only a trained model can be approved; this one is rejected" in response.content.decode()
    assert ModelVersion.objects.get(pk=candidate.pk).status == "rejected"

    client.force_login(book["analyst"])  # reads the notes, may not act
    page = client.get(f"/models/{candidate.pk}/").content.decode()
    assert "Out-of-time sample reproduces the AUC." in page and "Add note" not in page
    assert client.post(f"/models/{candidate.pk}/notes/", {"text": "hi"}).status_code == 403
