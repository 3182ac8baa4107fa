"""The portal in a real browser (Chromium): an analyst's day, an import with an
error, a developer's training run, and the wall between portfolios. Every page is
checked for console errors (a Content-Security-Policy violation is one) and
screenshotted into var/screenshots/."""

from __future__ import annotations

import contextlib
import re
import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from scoring.models import ModelVersion, Score
from tests.browser.conftest import log_in
from tests.scoring.portal_world import PASSWORD, bad_applicants_csv, portal_world

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def drawn(page, chart: str):
    """A Chart.js chart has been drawn on the canvas (charts.js marks it)."""
    expect(page.locator(f'canvas[data-chart="{chart}"]')).to_have_attribute("data-drawn", "1")


def test_an_analyst_reads_the_dashboard_opens_an_applicant_and_tries_the_whatif_panel(
    live_server, browser_page, screenshot, tmp_path
):
    world = portal_world(tmp_path)
    page, base = browser_page, live_server.url
    log_in(page, base, "analyst_a", PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Portfolio dashboard: Alpha book")
    drawn(page, "distribution")
    # Drift and fairness of the champion (the monitoring reports computed after its batch run).
    expect(page.get_by_role("table", name="Latest monitoring reports")).to_contain_text("Stability (PSI/CSI)")
    screenshot(page, "dashboard")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Applicants").click()
    page.get_by_label("External id starts with").fill(world.applicant.external_id)
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name=world.applicant.external_id).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Applicant {world.applicant.external_id}")
    latest = Score.objects.filter(applicant=world.applicant).order_by("-created_at", "-id").first()
    reasons = page.get_by_role("list", name="Reasons")
    expect(reasons.get_by_role("listitem")).to_have_count(len(latest.reasons))
    expect(reasons).to_contain_text(latest.reasons[0]["text"])
    drawn(page, "waterfall")
    drawn(page, "history")
    screenshot(page, "applicant")

    # What if the applicant's debt-to-income ratio were much higher? Scored, not saved.
    scores_before = Score.objects.count()
    page.get_by_label("Debt to income").fill("3.5")
    page.get_by_role("button", name="Score these values").click()
    result = page.locator("#whatif-result")
    expect(result).to_contain_text("What-if result")
    expect(result).to_contain_text("Changed: Debt to income")
    expect(result.locator(".whatif-reasons tbody tr").first).to_be_visible()
    expect(result.get_by_role("table", name="Current values → changed values")).to_contain_text(
        "Probability of default"
    )
    assert Score.objects.count() == scores_before
    result.scroll_into_view_if_needed()
    screenshot(page, "applicant-whatif", full_page=False)

    # Keyboard first: the first Tab reaches the skip link, which moves focus to the content.
    page.goto(page.url)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    # A narrow screen: one column, nothing wider than the viewport.
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(page.url)
    drawn(page, "waterfall")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "applicant-narrow")
    page.set_viewport_size({"width": 1280, "height": 900})

    for name, path in (("applicants", "/applicants/"), ("runs", "/runs/"), ("imports", "/imports/")):
        page.goto(base + path)
        expect(page.locator("main h1")).to_be_visible()
        screenshot(page, name)
    page.goto(f"{base}/runs/")
    expect(page.get_by_role("link", name="CSV")).to_be_visible()


@pytest.mark.worker
def test_an_analyst_uploads_a_file_with_an_error_and_sees_the_validation_report(
    live_server, browser_page, screenshot, tmp_path, celery_worker_factory
):
    world = portal_world(tmp_path, champion=False)
    celery_worker_factory(roles=("default",))
    page, base = browser_page, live_server.url
    log_in(page, base, "analyst_a", PASSWORD)
    page.get_by_role("link", name="Imports").click()
    # The upload form (the page also offers one that proposes a schema from a sample).
    upload = page.locator("form", has=page.get_by_role("button", name="Upload and validate"))
    upload.get_by_label("Portfolio").select_option(label="Alpha book")
    upload.get_by_label("File contains").select_option(label="Applicants")
    upload.get_by_label("File", exact=True).set_input_files(
        str(bad_applicants_csv(tmp_path / "march.csv", world.alpha))
    )
    upload.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url(re.compile(r"/imports/\d+/$"))
    # The page polls the job and reloads itself when the worker has finished.
    expect(page.locator("#validation-report")).to_be_visible(timeout=90_000)
    expect(page.get_by_text("Rejected: invalid rows, nothing written")).to_be_visible()
    report = page.locator("#validation-report tbody tr")
    expect(report).to_have_count(2)
    expect(report.filter(has_text="home_ownership")).to_contain_text("not one of the declared categories")
    expect(report.filter(has_text="income")).to_contain_text("4")  # spreadsheet row of the bad line
    screenshot(page, "import-report")


@pytest.mark.worker
def test_a_developer_starts_training_and_watches_the_progress_bar_complete(
    live_server, browser_page, screenshot, tmp_path, celery_worker_factory
):
    portal_world(tmp_path, champion=False)
    celery_worker_factory(roles=("train",))
    page, base = browser_page, live_server.url
    log_in(page, base, "developer", PASSWORD)
    page.get_by_role("link", name="Models").click()
    train = page.locator("form", has=page.get_by_role("button", name="Train"))
    train.get_by_label("Portfolio").select_option(label="Alpha book")
    train.get_by_label("Model").select_option(value="mlp")
    train.get_by_label("At most epochs").fill("12")
    train.get_by_role("button", name="Train").click()
    page.wait_for_url(re.compile(r"/models/\d+/$"))
    version = ModelVersion.objects.order_by("-pk").first()
    bar = page.locator("#training-progress")
    seen = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(PlaywrightError):  # the page reloads itself once training has finished
            seen.append(float(bar.get_attribute("value", timeout=2_000) or 0))
        if page.locator(".badge", has_text="Trained").count():
            break
        page.wait_for_timeout(300)
    expect(page.locator(".badge", has_text="Trained")).to_be_visible(timeout=5_000)
    assert float(bar.get_attribute("value")) == 1.0
    assert seen and min(seen) < 1.0, f"the bar never showed training under way: {seen}"
    version.refresh_from_db()
    assert version.status == ModelVersion.STATUS_TRAINED
    for chart in ("roc", "ks", "calibration", "gains", "lift", "training"):
        drawn(page, chart)
    screenshot(page, "model")
    page.goto(f"{base}/models/")
    screenshot(page, "models")


def test_an_analyst_of_another_portfolio_cannot_reach_the_first_ones_applicant(
    live_server, browser_page, browser_problems, screenshot, tmp_path
):
    world = portal_world(tmp_path, champion=False)
    page, base = browser_page, live_server.url
    log_in(page, base, "analyst_b", PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Portfolio dashboard: Bravo book")
    browser_problems.allow("status of 404")
    response = page.goto(f"{base}/applicants/{world.applicant.pk}/")
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    assert world.applicant.external_id not in page.content()
    page.goto(f"{base}/applicants/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Applicants: Bravo book")
    assert "Alpha book" not in page.content()

    # The auditor reads the audit log, which recorded the analysts' reads.
    page.get_by_role("button", name="Log out").click()
    log_in(page, base, "auditor", PASSWORD)
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").fill("applicant.list")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr").first).to_contain_text("analyst_b")
    screenshot(page, "audit-log")
