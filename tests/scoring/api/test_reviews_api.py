"""The review queue over the API: list, take, release, decide, the override report."""

from __future__ import annotations

import pytest

from scoring.models import AuditEvent, ReviewDecision
from scoring.services.access import portfolio_access_grant
from tests.factories import UserFactory
from tests.scoring.api.conftest import client_for

REASON = "Income verified with three payslips; the new job is permanent."


@pytest.fixture
def underwriters(api_world):
    users = {}
    for name, portfolio in (("uw", "mine"), ("uw2", "mine"), ("their_uw", "theirs")):
        users[name] = UserFactory(username=name)
        portfolio_access_grant(portfolio=api_world[portfolio], grantee=users[name], role="underwriter")
    return users


def referred(api_world, key="applicants"):
    return [a.scores.get() for a in api_world[key] if a.scores.get().decision == "refer"]


def test_the_queue_lists_the_referred_applications_of_your_portfolios_oldest_first(api_world, underwriters):
    cases = referred(api_world)
    assert len(cases) == 3
    answer = client_for(underwriters["uw"]).get("/api/v1/review-queue/")
    assert answer.status_code == 200
    assert [row["id"] for row in answer.json()["results"]] == [s.pk for s in cases]
    assert answer.json()["results"][0]["review"] is None and answer.json()["results"][0]["decision"] == "refer"
    # Readable with the view grant (the analyst), not with another portfolio's.
    assert client_for(api_world["owner"]).get("/api/v1/review-queue/").json()["count"] == 3
    theirs = client_for(underwriters["their_uw"]).get("/api/v1/review-queue/").json()
    assert theirs["count"] == 0  # their three applicants are declined: no case, and none of mine
    assert client_for(underwriters["their_uw"]).get(f"/api/v1/review-queue/{cases[0].pk}/").status_code == 404


def test_an_underwriter_takes_and_decides_a_case_and_a_second_one_is_refused(api_world, underwriters):
    case = referred(api_world)[0]
    uw, uw2 = client_for(underwriters["uw"]), client_for(underwriters["uw2"])
    taken = uw.post(f"/api/v1/review-queue/{case.pk}/take/")
    assert taken.status_code == 200 and taken.json()["state"] == "taken" and taken.json()["assigned_to"] == "uw"
    refused = uw2.post(f"/api/v1/review-queue/{case.pk}/take/")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "review_conflict"
    assert [r["id"] for r in uw.get("/api/v1/review-queue/?state=mine").json()["results"]] == [case.pk]
    assert case.pk not in [r["id"] for r in uw.get("/api/v1/review-queue/?state=open").json()["results"]]
    short = uw.post(f"/api/v1/review-queue/{case.pk}/decide/", {"decision": "approve", "reason": "ok"}, format="json")
    assert short.status_code == 400 and "reason" in short.json()["error"]["details"]
    decided = uw.post(f"/api/v1/review-queue/{case.pk}/decide/", {"decision": "approve", "reason": REASON},
                      format="json")  # fmt: skip
    body = decided.json()
    assert decided.status_code == 200, body
    assert (body["state"], body["decision"], body["decided_by"], body["model_decision"]) == (
        "decided",
        "approve",
        "uw",
        "refer",
    )
    assert body["is_override"] is False  # the points are in the refer band: resolved by review
    assert case.pk not in [r["id"] for r in uw.get("/api/v1/review-queue/").json()["results"]]
    again = uw.post(f"/api/v1/review-queue/{case.pk}/decide/", {"decision": "decline", "reason": REASON},
                    format="json")  # fmt: skip
    assert again.status_code == 409
    detail = uw.get(f"/api/v1/review-queue/{case.pk}/").json()
    assert detail["review"]["decision"] == "approve" and detail["history"][0]["final_decision"] == "approve"
    assert AuditEvent.objects.filter(action="review.decide", outcome="success", actor_username="uw").count() == 1


def test_acting_on_a_case_needs_the_review_grant(api_world, underwriters):
    case = referred(api_world)[0]
    owner = client_for(api_world["owner"])
    assert owner.get(f"/api/v1/review-queue/{case.pk}/").status_code == 200
    for step in ("take", "release", "decide"):
        assert owner.post(f"/api/v1/review-queue/{case.pk}/{step}/").status_code == 403
    assert client_for(underwriters["their_uw"]).post(f"/api/v1/review-queue/{case.pk}/take/").status_code == 404
    assert not ReviewDecision.objects.exists()


def test_release_gives_the_case_back(api_world, underwriters):
    case = referred(api_world)[1]
    uw, uw2 = client_for(underwriters["uw"]), client_for(underwriters["uw2"])
    uw.post(f"/api/v1/review-queue/{case.pk}/take/")
    assert uw2.post(f"/api/v1/review-queue/{case.pk}/release/").status_code == 409
    released = uw.post(f"/api/v1/review-queue/{case.pk}/release/")
    assert released.status_code == 200 and released.json()["state"] == "open"
    assert uw2.post(f"/api/v1/review-queue/{case.pk}/take/").json()["assigned_to"] == "uw2"


def test_the_model_versions_review_report(api_world, underwriters):
    uw = client_for(underwriters["uw"])
    for case, final in zip(referred(api_world)[:2], ("approve", "decline"), strict=True):
        uw.post(f"/api/v1/review-queue/{case.pk}/take/")
        uw.post(f"/api/v1/review-queue/{case.pk}/decide/", {"decision": final, "reason": REASON}, format="json")
    report = uw.get(f"/api/v1/models/{api_world['version'].pk}/reviews/")
    assert report.status_code == 200
    assert report.json() == {"model_version": api_world["version"].pk, "referred": 3, "reviewed": 2, "approved": 1,
                             "declined": 1, "overrides": 0, "override_rate": 0.0}  # fmt: skip
    assert uw.get(f"/api/v1/models/{api_world['their_version'].pk}/reviews/").status_code == 404
