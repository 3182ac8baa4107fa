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


# The layout rule every screenshotted page must keep: no element (the page's own frame
# aside) taller than three viewports, no table cell narrower than four characters of its
# font (a definition's value counts as a cell), measured on its own first four characters (a value wrapping one character a
# line is the failure this catches).
LAYOUT_CHECK = """() => {
  const limit = window.innerHeight * 3, problems = [];
  const frame = new Set(["HTML", "BODY", "MAIN"]);
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "");
  for (const el of document.querySelectorAll("body *")) {
    if (frame.has(el.tagName) || el.closest("[hidden], details:not([open]) > :not(summary)")) continue;
    const box = el.getBoundingClientRect();
    if (box.height > limit) problems.push(`${name(el)} is ${Math.round(box.height)} px tall (limit ${Math.round(limit)})`);
  }
  const probe = document.createElement("span");
  probe.style.cssText = "position:absolute;visibility:hidden;white-space:pre";
  for (const cell of document.querySelectorAll("td, th, dd")) {
    if (!cell.textContent.trim() || cell.getClientRects().length === 0) continue;
    probe.style.font = getComputedStyle(cell).font;
    // Four characters of the cell's own text (all of it when shorter): "ETA" may be 3 wide.
    probe.textContent = cell.textContent.trim().replace(/\\s+/g, " ").slice(0, 4);
    cell.appendChild(probe);
    const four = probe.getBoundingClientRect().width;
    cell.removeChild(probe);
    const style = getComputedStyle(cell);
    const inner = cell.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (inner + 0.5 < four) problems.push(`${name(cell)} "${cell.textContent.trim().slice(0, 30)}" is ${Math.round(inner)} px wide (< 4 characters, ${Math.round(four)} px)`);
  }
  return problems;
}"""


def layout_problems(page) -> list[str]:
    return page.evaluate(LAYOUT_CHECK)


@pytest.fixture
def screenshot():
    """Screenshot a page into var/screenshots/ after checking its layout."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, *, full_page: bool = True, layout: bool = True) -> Path:
        if layout:
            problems = layout_problems(page)
            assert not problems, f"layout of {name} ({page.url}): {problems[:10]}"
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
