"""The review queue in a real browser: an underwriter takes a referred application
from the queue and overrides it with a reason; the override shows in the applicant's
history and in the audit log. Console errors fail the test; pages are screenshotted
after the layout check."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from scoring.models import ReviewDecision, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.policy import policy_approve, policy_propose
from scoring.services.scoring import score_realtime
from tests.browser.conftest import log_in
from tests.factories import UserFactory
from tests.scoring.portal_world import PASSWORD, portal_world

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REASON = "Applicant holds a second home abroad as collateral; the exposure is too large for the book."


def rule_referred_case(world):
    """An applicant the points approve, referred by a strategy rule put in force by two
    credit risk officers: the model's decision is approve, so a decline overrides it."""
    officers = [UserFactory(username=f"officer{i}") for i in (1, 2)]
    for officer in officers:
        portfolio_access_grant(portfolio=world.alpha, grantee=officer, role="credit risk officer")
    rule = {"code": "RR01", "action": "refer", "text": "Every approval is checked by a person this month",
            "conditions": {"score": "> 0"}}  # fmt: skip
    proposal = policy_propose(portfolio=world.alpha, user=officers[0], changes={"rules": [rule]}, comment="pilot")
    policy_approve(policy_version=proposal, user=officers[1], reason="agreed")
    approved = Score.objects.filter(run=world.run, decision="approve", is_shadow=False).order_by("pk").first()
    world.alpha.refresh_from_db()
    score = score_realtime(portfolio=world.alpha, applicant=approved.applicant, requested_by=world.users["analyst_a"])
    assert score.decision == "refer" and score.score >= world.alpha.approve_min_score
    return score


def test_an_underwriter_overrides_a_referred_application_and_it_shows_in_history_and_audit(
    live_server, browser_page, screenshot, tmp_path
):
    world = portal_world(tmp_path)
    case = rule_referred_case(world)
    external_id = case.applicant.external_id
    page, base = browser_page, live_server.url

    log_in(page, base, "underwriter", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Review queue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Review queue: Alpha book")
    expect(
        page.get_by_role("table", name="Referred, reviewed and overridden decisions per model version")
    ).to_be_visible()
    screenshot(page, "review-queue")

    link = page.get_by_role("link", name=f"Case of {external_id}")
    while not link.count():  # the newest case is on the last page (oldest first)
        page.get_by_role("link", name="Next page").click()
    link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Referred application of {external_id}")
    expect(page.get_by_role("list", name="Reasons")).to_be_visible()
    page.get_by_role("button", name="Take the case").click()
    expect(page.get_by_role("status")).to_contain_text("The case is yours")
    assert ReviewDecision.objects.get(score=case).assigned_to == world.users["underwriter"]
    # The reason is required (the browser asks for one) and must say something: the service refuses nine characters.
    page.get_by_label("Decline").check()
    page.get_by_label("Reason for the decision").fill("too short")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.get_by_role("status")).to_contain_text("10 characters at least")
    assert ReviewDecision.objects.get(score=case).decided_at is None
    page.get_by_label("Decline").check()
    page.get_by_label("Reason for the decision").fill(REASON)
    screenshot(page, "review-case")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.get_by_role("status")).to_contain_text("Decided: decline (an override of the model)")
    review = ReviewDecision.objects.get(score=case)
    assert (review.decision, review.is_override, review.model_decision) == ("decline", True, "approve")

    page.get_by_role("link", name="The applicant's page").click()
    history = page.get_by_role("table", name="Decisions, newest first")
    expect(history).to_contain_text("override")
    expect(history).to_contain_text(REASON)
    expect(history).to_contain_text("by underwriter")
    screenshot(page, "review-applicant-history")

    page.get_by_role("button", name="Log out").click()
    log_in(page, base, "auditor", PASSWORD)
    page.goto(f"{base}/audit/?action=review.decide")
    rows = page.get_by_role("row").filter(has_text="review.decide")
    expect(rows).to_have_count(2)  # the refused nine-character reason, then the decision
    expect(rows.filter(has_text="denied")).to_contain_text("10 characters at least")
    row = rows.filter(has_text="success")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("underwriter")
    expect(row).to_contain_text("decline")
    screenshot(page, "review-audit")
