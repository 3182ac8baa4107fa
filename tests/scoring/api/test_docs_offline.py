"""The API docs pages call no other host: every address their HTML and scripts load is
our own, and ReDoc's bundle is served without the logo it drew from Redocly's CDN."""

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from scoring.api.docs import REDOC_CDN_LOGO
from tests.factories import UserFactory

# Attributes that make a browser fetch something (a link's href is followed only on a click).
LOADED = re.compile(r'<(?:script|img|iframe|source)\b[^>]*\bsrc="([^"]+)"|<link\b[^>]*\bhref="([^"]+)"')


def loaded_addresses(html: str) -> list[str]:
    return [src or href for src, href in LOADED.findall(html)]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_the_docs_pages_load_nothing_from_another_host(client, url):
    client.force_login(UserFactory(username="reader"))
    html = client.get(url).content.decode()
    addresses = loaded_addresses(html)
    assert addresses, html[:500]
    external = [a for a in addresses if not a.startswith("/") or a.startswith("//")]
    assert external == [], f"{url} loads {external}"
    assert "googleapis" not in html and "cdn." not in html
    for address in addresses:  # and each is ours: a static file we ship, or a view answering 200
        if address.startswith(settings.STATIC_URL):
            assert finders.find(address.removeprefix(settings.STATIC_URL).split("?")[0]), address
        else:
            assert client.get(address).status_code == 200, address


@pytest.mark.django_db
def test_redocs_bundle_is_served_without_its_cdn_logo(client):
    html = client.get("/api/v1/redoc/").content.decode()
    (bundle,) = [a for a in loaded_addresses(html) if "redoc" in a and a.endswith(".js")]
    assert bundle == "/api/v1/redoc/redoc.standalone.js"
    response = client.get(bundle)
    body = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    assert len(body) > 100_000 and "Redoc" in body  # the real bundle
    assert REDOC_CDN_LOGO not in body and "cdn.redoc.ly" not in body
