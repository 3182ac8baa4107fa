"""Crawl the portal as each member of the cast: follow every same-origin link reachable
from the dashboard and check that no page fails, no link is broken, and no page shows
data of a portfolio the user is not granted."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client

from scoring.models import ModelVersion
from tests.scoring.portal_world import ALPHA, BRAVO, BRAVO_PREFIX, portal_world

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ROLES = ("analyst_a", "analyst_b", "validator", "developer", "auditor", "underwriter", "admin")
NOT_FOLLOWED = ("/logout/", "/admin/", "/api/", "/static/", "/healthz")
PER_PATTERN = 6  # pages of one shape (one applicant page is like another) visited per role
ALPHA_ID = re.compile(r"(?<!BRAVO-)SYN\d{8}")  # an Alpha external id (Bravo's all carry the prefix)


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def shape(url: str) -> str:
    parts = urlsplit(url)
    return re.sub(r"\d+", "N", parts.path) + ("?" + re.sub(r"=[^&]*", "=", parts.query) if parts.query else "")


def crawl(client: Client) -> dict[str, tuple[int, str]]:
    """Every page reached from the dashboard: url -> (status, body as text)."""
    seen: dict[str, tuple[int, str]] = {}
    per_shape: Counter = Counter()
    queue = ["/"]
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode("utf-8", errors="replace") if not url.endswith(".parquet") else ""
        seen[url] = (response.status_code, text)
        if "text/html" not in response.get("Content-Type", ""):
            continue
        parser = Links()
        parser.feed(text)
        for href in parser.hrefs:
            target = urljoin(url, href.replace("&amp;", "&"))
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or href.startswith("#"):
                continue  # another origin, or an anchor on this page
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path.startswith(NOT_FOLLOWED) or path in seen or path in queue:
                continue
            if per_shape[shape(path)] >= PER_PATTERN:
                continue
            per_shape[shape(path)] += 1
            queue.append(path)
    return seen


@pytest.fixture
def world(tmp_path):
    return portal_world(tmp_path)


def test_every_link_works_for_every_role_and_no_page_leaks_another_portfolio(world):
    visited = {}
    for role in ROLES:
        client = Client()
        client.force_login(world.users[role])
        pages = crawl(client)
        visited[role] = pages
        broken = {url: status for url, (status, _) in pages.items() if status != 200}
        assert not broken, f"{role}: broken links or server errors {broken}"

    # Each role reached the pages it is meant to see.
    def reached(role, prefix):
        return any(url.startswith(prefix) for url in visited[role])

    assert reached("analyst_a", "/applicants/") and reached("analyst_a", "/runs/") and reached("analyst_a", "/imports/")
    assert reached("analyst_a", f"/applicants/{world.applicant.pk}/")
    assert reached("analyst_a", f"/runs/{world.run.pk}/export.csv")
    assert reached("validator", f"/models/{world.champion.pk}/")
    assert reached("auditor", "/audit/") and reached("admin", "/audit/")
    assert not reached("analyst_a", "/audit/") and not reached("developer", "/audit/")
    assert reached("underwriter", "/reviews/") and any(url.startswith("/reviews/") and url != "/reviews/"
                                                       for url in visited["underwriter"])  # fmt: skip
    for role in ROLES:
        assert len(visited[role]) >= 5, f"{role} reached only {sorted(visited[role])}"

    # Analyst A (Alpha only) never sees anything of Bravo, on any page or export.
    for url, (_, text) in visited["analyst_a"].items():
        for secret in (BRAVO, BRAVO_PREFIX, "bravo-secret-file"):
            assert secret not in text, f"analyst_a saw {secret!r} on {url}"
    # Analyst B (Bravo only) never sees anything of Alpha.
    for url, (_, text) in visited["analyst_b"].items():
        assert ALPHA not in text and "alpha-bad" not in text, f"analyst_b saw Alpha on {url}"
        assert not ALPHA_ID.search(text), f"analyst_b saw an Alpha applicant on {url}"
    # The auditor is granted Alpha only.
    for url, (_, text) in visited["auditor"].items():
        if not url.startswith("/audit/"):  # the audit log names every portfolio's events by id only
            assert BRAVO_PREFIX not in text and BRAVO not in text, f"auditor saw Bravo on {url}"


def test_another_portfolios_objects_answer_404_like_missing_ones(world):
    client = Client()
    client.force_login(world.users["analyst_a"])
    bravo_model = ModelVersion.objects.get(portfolio=world.bravo)
    bravo_job = world.bravo.import_jobs.get()
    for url in (
        f"/applicants/{world.bravo_applicant.pk}/",
        f"/applicants/?portfolio={world.bravo.pk}",
        f"/?portfolio={world.bravo.pk}",
        f"/models/{bravo_model.pk}/",
        f"/models/{bravo_model.pk}/progress/",
        f"/imports/{bravo_job.pk}/",
        f"/imports/{bravo_job.pk}/status/",
        "/applicants/999999999/",
    ):
        assert client.get(url).status_code == 404, url
    response = client.post(f"/applicants/{world.bravo_applicant.pk}/whatif/", {"income": "1000"})
    assert response.status_code == 404
    assert client.post(f"/models/{bravo_model.pk}/approve/").status_code == 404
