"""Reading the audit log: the selector, the API list and CSV export (auditors only),
the admin (read-only), and the events the API records for views, lists and denials."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from scoring.audit import audit_record, audit_seal
from scoring.models import AuditEvent
from scoring.selectors import audit_event_list
from scoring.services.access import portfolio_access_grant, user_role_add
from tests.factories import UserFactory, synthetic_portfolio

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor():
    user = UserFactory(username="audrey")
    user_role_add(user=user, role="auditor")
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def analyst():
    return UserFactory(username="ana")


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_only_auditors_and_superusers_read_the_log(auditor, analyst):
    audit_record(action="login", actor=analyst)
    assert list(audit_event_list(user=analyst, filters={})) == []
    assert audit_event_list(user=auditor, filters={"action": "login"}).count() == 1
    boss = UserFactory(username="root", is_superuser=True)
    assert audit_event_list(user=boss).count() == AuditEvent.objects.count() > 1


def test_the_selector_filters_by_action_family_actor_portfolio_outcome_and_days(auditor, analyst):
    audit_record(action="model.approve", actor=analyst, portfolio_id=1)
    audit_record(action="model.promote", actor=analyst, portfolio_id=2, outcome="denied")
    audit_record(action="login", actor=auditor)
    today = timezone.localdate()

    def actions(**filters):
        return sorted(audit_event_list(user=auditor, filters=filters).values_list("action", flat=True))

    assert actions(action="model.") == ["model.approve", "model.promote"]
    assert actions(action="model") == []
    assert actions(actor="ana", outcome="denied") == ["model.promote"]
    assert actions(portfolio=1) == ["model.approve"]
    assert len(actions(since=today, until=today)) == 4  # and the auditor's role grant
    assert actions(since=today + dt.timedelta(days=1)) == []


def test_the_api_lists_and_exports_events_for_auditors_and_audits_the_reading(auditor, analyst):
    audit_record(action="login", actor=analyst)
    audit_record(action="model.approve", actor=analyst, portfolio_id=4, details={"status": "approved"})
    audit_seal()  # an event has its seq and hash once sealed (within AUDIT_SEAL_WINDOW_SECONDS)
    response = api(auditor).get("/api/v1/audit-events/", {"action": "model.approve"})
    assert response.status_code == 200, response.content
    (row,) = response.json()["results"]
    assert (row["action"], row["actor_username"], row["portfolio_id"]) == ("model.approve", "ana", 4)
    assert len(row["hash"]) == 64

    export = api(auditor).get("/api/v1/audit-events/export/", {"actor": "ana"})
    assert export.status_code == 200 and export["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["model.approve", "login"]
    viewed, exported = AuditEvent.objects.filter(action__startswith="audit.").order_by("id")
    assert (viewed.action, viewed.actor_id, viewed.details["rows"]) == ("audit.view", auditor.pk, 1)
    assert (exported.action, exported.details["rows"], exported.details["filters"]) == (
        "audit.export", 2, {"actor": "ana"}
    )  # fmt: skip


def test_the_api_refuses_non_auditors_and_records_the_refusal(analyst):
    response = api(analyst).get("/api/v1/audit-events/")
    assert response.status_code == 403
    assert api(analyst).get("/api/v1/audit-events/export/").status_code == 403
    denied = AuditEvent.objects.filter(action="request.denied").order_by("id")
    assert [(e.actor_id, e.details["path"], e.details["status"]) for e in denied] == [
        (analyst.pk, "/api/v1/audit-events/", 403),
        (analyst.pk, "/api/v1/audit-events/export/", 403),
    ]


def test_bad_filters_are_a_400(auditor):
    assert api(auditor).get("/api/v1/audit-events/", {"since": "yesterday"}).status_code == 400


def test_viewing_listing_and_explaining_applicants_through_the_api_is_recorded():
    book = synthetic_portfolio(n=5, seed=2)
    analyst = UserFactory(username="viewer")
    portfolio_access_grant(portfolio=book, grantee=analyst, role="analyst")
    applicant = book.applicants.order_by("pk").first()
    client = api(type(analyst).objects.get(pk=analyst.pk))
    assert client.get(f"/api/v1/applicants/{applicant.pk}/", HTTP_X_REQUEST_ID="req-view-0001").status_code == 200
    listed = client.get("/api/v1/applicants/", {"portfolio": book.pk})
    assert listed.status_code == 200
    view = AuditEvent.objects.get(action="applicant.view")
    assert (view.actor_id, view.portfolio_id, view.object_ids, view.request_id) == (
        analyst.pk, book.pk, [applicant.pk], "req-view-0001"
    )  # fmt: skip
    listing = AuditEvent.objects.get(action="applicant.list")
    assert listing.details == {"filters": {"portfolio": str(book.pk)}, "rows": 5}


def test_the_admin_shows_the_log_read_only(auditor):
    event = audit_record(action="login", actor=auditor)
    boss = UserFactory(username="boss", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(boss)
    assert client.get("/admin/scoring/auditevent/").status_code == 200
    assert client.get(f"/admin/scoring/auditevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/scoring/auditevent/add/").status_code == 403
    assert client.post(f"/admin/scoring/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/scoring/auditcheckpoint/").status_code == 200
    assert AuditEvent.objects.filter(pk=event.pk).exists()
