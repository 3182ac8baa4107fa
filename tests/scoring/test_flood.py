"""Denied-request flood control: anonymous refusals from one source are recorded one by
one up to an allowance per window, then answered 429 before any authentication work
and written as one aggregated event when the window closes."""

from __future__ import annotations

import pytest
from django.test import Client

from scoring.middleware import denied_flood
from scoring.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    now = [1_800_000_000.0]
    monkeypatch.setattr(denied_flood, "clock", lambda: now[0])
    return now


def test_a_flood_of_bogus_tokens_writes_a_bounded_log_and_one_burst_event(settings, clock):
    settings.AUDIT_DENIED_BURST, settings.AUDIT_DENIED_WINDOW_S = 5, 60
    client = Client(headers={"Authorization": "Token bogus-token-0000"})
    statuses = [client.get(f"/api/v1/{path}/").status_code for path in ("applicants", "scores") * 30]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert AuditEvent.objects.filter(action="request.denied").count() == 5
    assert not AuditEvent.objects.filter(action="request.denied_burst").exists()  # the window is still open
    throttled = client.get("/api/v1/applicants/")
    assert throttled.json()["error"]["code"] == "throttled" and int(throttled["Retry-After"]) >= 1
    clock[0] += 61  # the window closes; the next request (from anyone) writes its burst
    assert Client().get("/healthz").status_code == 200
    burst = AuditEvent.objects.get(action="request.denied_burst")
    assert burst.outcome == "denied" and burst.actor_id is None and burst.ip is None
    details = burst.details
    assert (details["source"], details["count"], details["recorded_singly"], details["suppressed"]) == (
        "127.0.0.1", 61, 5, 56,
    )  # fmt: skip
    assert details["window_seconds"] == 60 and details["window_start"] < details["window_end"]
    assert details["paths"] == {"/api/v1/applicants/": 28, "/api/v1/scores/": 28}  # beyond the 5 recorded
    # A new window: the source is recorded singly again.
    assert client.get("/api/v1/applicants/").status_code == 401
    assert AuditEvent.objects.filter(action="request.denied").count() == 6


def test_signed_in_users_refusals_are_always_recorded_and_never_throttled_here(settings, clock):
    settings.AUDIT_DENIED_BURST = 2
    client = Client()
    client.force_login(UserFactory(username="nosy"))
    assert {client.get("/api/v1/audit-events/").status_code for _ in range(6)} == {403}
    assert AuditEvent.objects.filter(action="request.denied", actor_username="nosy").count() == 6
