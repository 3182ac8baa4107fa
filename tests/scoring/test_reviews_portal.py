"""The review queue in the portal: the navigation, the queue page, take / release /
decide through the forms (the service's rules answered as messages), the applicant's
history showing the final decision beside the model's."""

from __future__ import annotations

import pytest
from django.test import Client

from scoring.models import Applicant, AuditEvent, ModelVersion, ReviewDecision, Score
from scoring.services.access import portfolio_access_grant
from tests.factories import PortfolioFactory, UserFactory

REASON = "Income verified with three payslips; the new job is permanent."


@pytest.fixture
def desk(db):
    portfolio, other = PortfolioFactory(name="Desk book"), PortfolioFactory(name="Other book")
    users = {name: UserFactory(username=name) for name in ("uw", "uw2", "analyst", "their_uw")}
    portfolio_access_grant(portfolio=portfolio, grantee=users["uw"], role="underwriter")
    portfolio_access_grant(portfolio=portfolio, grantee=users["uw2"], role="underwriter")
    portfolio_access_grant(portfolio=portfolio, grantee=users["analyst"], role="analyst")
    portfolio_access_grant(portfolio=other, grantee=users["their_uw"], role="underwriter")
    version = ModelVersion.objects.create(
        portfolio=portfolio, version=1, kind="mlp", status="champion", schema=portfolio.schema
    )
    applicant = Applicant.objects.create(
        portfolio=portfolio, external_id="DESK-1", schema=portfolio.schema, features={"income": 1000.0}
    )
    score = Score.objects.create(
        portfolio=portfolio, applicant=applicant, model_version=version, pd=0.08, score=545, decision="refer",
        base_log_odds=-2.4, input_features=applicant.features, input_hash="d" * 64,
    )  # fmt: skip
    clients = {}
    for name, user in users.items():
        clients[name] = Client()
        clients[name].force_login(user)
    return {"portfolio": portfolio, "users": users, "score": score, "clients": clients, "applicant": applicant}


def test_the_queue_is_in_the_navigation_of_underwriters_only(desk):
    page = desk["clients"]["uw"].get("/reviews/").content.decode()
    assert "Review queue" in page and "DESK-1" in page and f"/reviews/{desk['score'].pk}/" in page
    assert "Review queue</a>" not in desk["clients"]["analyst"].get("/").content.decode()
    assert desk["clients"]["their_uw"].get(f"/reviews/{desk['score'].pk}/").status_code == 404


def test_an_underwriter_takes_and_decides_through_the_forms_and_the_history_shows_it(desk):
    uw, uw2, score = desk["clients"]["uw"], desk["clients"]["uw2"], desk["score"]
    case = f"/reviews/{score.pk}/"
    assert "Take the case" in uw.get(case).content.decode()
    uw.post(f"{case}take/")
    refused = uw2.post(f"{case}take/", follow=True).content.decode()
    assert "being reviewed by uw already" in refused
    assert "Take the case" not in uw2.get(case).content.decode()
    short = uw.post(f"{case}decide/", {"decision": "approve", "reason": "fine"}, follow=True).content.decode()
    assert "10 characters at least" in short
    done = uw.post(f"{case}decide/", {"decision": "approve", "reason": REASON}, follow=True).content.decode()
    assert "Decided: approve (resolved by review)" in done
    review = ReviewDecision.objects.get(score=score)
    assert (review.decision, review.decided_by, review.reason) == ("approve", desk["users"]["uw"], REASON)
    history = uw.get(f"/applicants/{desk['applicant'].pk}/").content.decode()
    assert "resolved by review" in history and REASON in history and "by uw on" in history
    assert "DESK-1" not in uw.get("/reviews/").content.decode()  # decided: out of the queue
    assert AuditEvent.objects.filter(action="review.take", outcome="denied", actor_username="uw2").exists()


def test_an_analyst_reads_a_case_but_cannot_take_it(desk):
    analyst, score = desk["clients"]["analyst"], desk["score"]
    assert "Take the case" not in analyst.get(f"/reviews/{score.pk}/").content.decode()
    answer = analyst.post(f"/reviews/{score.pk}/take/", follow=True).content.decode()
    assert "Only an underwriter of this portfolio" in answer
    assert not ReviewDecision.objects.exists()
