"""Each role's daily task in Chromium, on both demo books: German credit (long names
and values, the demo's real data) and the synthetic one. Every screenshot is taken
after the layout check (tests/browser/conftest.py); any console error fails the test."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from scoring.models import Score
from scoring.services.display import column_label, feature_columns
from tests.browser.conftest import log_in
from tests.scoring.portal_world import PASSWORD, german_world, portal_world

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def book(kind: str, tmp_path):
    """(portfolio, an applicant to copy the application from) of the demo book named."""
    if kind == "german":
        world = german_world()
        return world.portfolio, world.applicant
    world = portal_world(tmp_path)
    return world.alpha, world.applicant


@pytest.mark.parametrize("kind", ["german", "synthetic"])
def test_an_analyst_scores_a_new_application_reads_its_reasons_and_the_auditor_finds_it(
    kind, live_server, browser_page, screenshot, tmp_path
):
    portfolio, applicant = book(kind, tmp_path)
    page, base = browser_page, live_server.url
    log_in(page, base, "analyst_a", PASSWORD)
    screenshot(page, f"{kind}-dashboard")

    # The applicant page holds the book's names and values (German credit's wrap by words).
    page.goto(f"{base}/applicants/{applicant.pk}/")
    features = page.get_by_role("table", name="Features")
    first = feature_columns(portfolio.schema)[0]
    expect(features).to_contain_text(column_label(first))
    screenshot(page, f"{kind}-applicant")
    page.get_by_role("button", name="Score now").click()
    expect(page.locator(".messages")).to_contain_text("Scored now:")

    # A new application, typed into the form the schema builds.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Score an application").click()
    page.get_by_label("Portfolio", exact=True).select_option(label=portfolio.name)
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Score a new application: {portfolio.name}")
    for column in feature_columns(portfolio.schema):
        field = page.get_by_label(column_label(column), exact=True)
        value = applicant.features.get(column["name"])
        if value is None:
            continue
        if column["role"] == "categorical":
            field.select_option(value=str(value))
        else:
            field.fill(str(value))
    screenshot(page, f"{kind}-score-form")
    page.get_by_role("button", name="Score this application").click()
    page.wait_for_url(re.compile(r"/scores/\d+/$"))
    score = Score.objects.filter(portfolio=portfolio, applicant__isnull=True).latest("id")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Decision #{score.pk}: {portfolio.name}")
    reasons = page.get_by_role("list", name="Reasons")
    expect(reasons.get_by_role("listitem")).to_have_count(max(len(score.reasons), 1))
    if score.reasons:
        expect(reasons).to_contain_text(score.reasons[0]["text"])
    expect(page.locator('canvas[data-chart="waterfall"]')).to_have_attribute("data-drawn", "1")
    screenshot(page, f"{kind}-decision")

    # The auditor filters the log by the analyst's name and finds the decision.
    page.get_by_role("button", name="Log out").click()
    log_in(page, base, "auditor", PASSWORD)
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("User name").fill("analyst_a")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows.filter(has_text="score.create").first).to_contain_text(portfolio.name)
    assert rows.filter(has_text="auditor").count() == 0
    screenshot(page, f"{kind}-audit-log")
