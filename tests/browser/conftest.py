"""Real-browser tests of the portal: Playwright drives Debian's Chromium
(/usr/bin/chromium; never a downloaded browser) against pytest-django's live server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

# Playwright's sync API runs an event loop in this thread; the tests' ORM calls are
# still plain synchronous calls, which Django would otherwise refuse in that state.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items):
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Problems:
    """Console errors and uncaught exceptions of a page (a CSP violation is one)."""

    def __init__(self):
        self.messages: list[str] = []
        self.allowed: list[str] = []

    def attach(self, page) -> None:
        page.on("console", lambda m: m.type == "error" and self.messages.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))

    def allow(self, fragment: str) -> None:
        """A console error the test provokes on purpose (e.g. the 404 of a forbidden page)."""
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [m for m in self.messages if not any(a in m for a in self.allowed)]


@pytest.fixture
def browser_problems():
    return Problems()


@pytest.fixture
def browser_page(chromium, browser_problems):
    """A fresh browser context (no cookies) and page; fails the test on any console error."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    browser_problems.attach(page)
    yield page
    context.close()
    assert not browser_problems.unexpected(), browser_problems.unexpected()


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, *, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")
