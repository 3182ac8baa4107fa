"""Deployment hardening: `check --deploy` clean with production settings, the
Content-Security-Policy, cookie flags, request size limits, API throttling, and
the API docs served from our own static files."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import PortfolioFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a production web process (secrets as a deployment sets them)."""
    from cryptography.fernet import Fernet

    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="riskapp.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="risk.example.com",
        HTTPS="true",
        DATABASE_URL="postgres://riskapp@db.example.com:5432/riskapp",  # never connected to by the check
        PII_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        AUDIT_SIGNING_KEY=secrets.token_urlsafe(40),
        VAR_DIR=str(tmp_path),
    )
    env.update(extra)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
def test_check_deploy_reports_nothing_with_production_settings(tmp_path):
    result = check_deploy(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_check_deploy_does_warn_when_served_without_tls(tmp_path):
    result = check_deploy(production_env(tmp_path, HTTPS="false"))
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr


def test_every_variable_the_settings_read_is_listed_in_env_example():
    source = (ROOT / "riskapp" / "settings.py").read_text() + (ROOT / "riskapp" / "env.py").read_text()
    read = set(re.findall(r'env_(?:str|bool|int|list|choice|secret)\(\s*"([A-Z][A-Z0-9_]*)"', source))
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert {"HTTPS", "SECURE_HSTS_PRELOAD", "LOGIN_FAILURE_LIMIT", "API_THROTTLE_USER"} <= read
    assert read - listed == set()


def csp_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in header.split(";")) if part}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_pages_carry_a_self_only_policy_without_inline_script(client, path):
    response = client.get(path)
    assert response.status_code == 200
    policy = csp_of(response)
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in value for values in policy.values() for value in values)
    html = response.content.decode()
    inline_scripts = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", html)
    assert inline_scripts == [], f"inline <script> on {path} would be blocked by the policy"


@pytest.mark.django_db
def test_the_api_docs_load_their_assets_locally_and_run_no_inline_script(client):
    swagger = client.get("/api/v1/docs/")
    assert swagger.status_code == 200
    html = swagger.content.decode()
    sources = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert sources and all(src.startswith("/") for src in sources), sources  # no CDN
    assert any("swagger-ui-bundle" in src and "sidecar" in src for src in sources)
    assert not re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # the start-up script is a file too
    init = next(src for src in sources if "script" in src.split("?")[-1])
    assert client.get(init).status_code == 200
    assert csp_of(swagger)["script-src"] == ["'self'"]
    redoc = client.get("/api/v1/redoc/")
    assert redoc.status_code == 200 and "googleapis" not in redoc.content.decode()
    assert all(src.startswith("/") for src in re.findall(r'<script[^>]*src="([^"]+)"', redoc.content.decode()))
    assert csp_of(redoc)["script-src"] == ["'self'"]


@pytest.mark.django_db
def test_the_session_cookie_is_httponly_samesite_and_secure_over_tls(client, settings):
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    UserFactory(username="ivy")
    response = client.post("/login/", {"username": "ivy", "password": "a-long-test-password"}, secure=True)
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
    assert 0 < int(cookie["max-age"]) <= 24 * 3600


@pytest.mark.django_db
def test_a_json_body_above_the_limit_is_refused_before_it_is_read(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    portfolio = PortfolioFactory()
    analyst = UserFactory()
    from scoring.services.access import portfolio_access_grant

    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    client = APIClient()
    client.force_authenticate(analyst)
    body = {"applicant": {"note": "x" * 5000}}
    response = client.post(f"/api/v1/portfolios/{portfolio.pk}/score/", body, format="json")
    assert response.status_code == 413, response.content


@pytest.mark.django_db
def test_an_upload_above_the_import_limit_is_refused_before_it_is_stored(settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.IMPORT_MAX_FILE_MB = 1
    settings.MEDIA_ROOT = tmp_path
    portfolio = PortfolioFactory()
    analyst = UserFactory()
    from scoring.services.access import portfolio_access_grant

    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="senior analyst")
    client = APIClient()
    client.force_authenticate(analyst)
    upload = SimpleUploadedFile("big.csv", b"a,b\n" + b"1,2\n" * 700_000, content_type="text/csv")
    response = client.post(
        "/api/v1/imports/", {"portfolio": portfolio.pk, "kind": "applicants", "file": upload}, format="multipart"
    )
    assert response.status_code == 413, response.content
    assert not any(tmp_path.rglob("big.csv"))


@pytest.fixture
def low_rates():
    """Throttle rates of 3 a minute for the test (the classes read their rates at import)."""
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    cache.clear()
    SimpleRateThrottle.THROTTLE_RATES = {"anon": "3/minute", "user": "3/minute"}
    yield
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    cache.clear()


def test_api_throttling_is_configured_for_anonymous_clients_and_users(settings):
    config = settings.REST_FRAMEWORK
    assert {c.rsplit(".", 1)[1] for c in config["DEFAULT_THROTTLE_CLASSES"]} == {"AnonRateThrottle", "UserRateThrottle"}
    assert set(config["DEFAULT_THROTTLE_RATES"]) == {"anon", "user"}


@pytest.mark.django_db
def test_a_user_above_the_rate_gets_429_with_retry_after(low_rates):
    client = APIClient()
    client.force_authenticate(UserFactory())
    answers = [client.get("/api/v1/portfolios/") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1]["Retry-After"]) > 0


@pytest.mark.django_db
def test_anonymous_clients_above_the_rate_get_429_on_public_endpoints(low_rates):
    client = APIClient()
    assert [client.get("/api/v1/schema/").status_code for _ in range(4)] == [200, 200, 200, 429]


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>")
INLINE_STYLE = re.compile(r"<style\b|\sstyle=\"|\son[a-z]+=\"")


@pytest.mark.django_db
def test_signed_in_pages_use_no_inline_script_style_or_handlers(client):
    """The policy blocks inline script, inline styles and on* handlers: a page relying
    on them would break in the browser, silently. Portal pages and the admin."""
    from django.urls import reverse

    from scoring.services.access import portfolio_access_grant

    portfolio = PortfolioFactory()
    user = UserFactory(is_staff=True, is_superuser=True)
    portfolio_access_grant(portfolio=portfolio, grantee=user, role="senior analyst")
    client.force_login(user)
    pages = [reverse(f"portal:{name}") for name in ("home", "applicant_list", "model_list", "run_list", "import_list")]
    pages += ["/admin/", "/admin/scoring/portfolio/", f"/admin/scoring/portfolio/{portfolio.pk}/change/"]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert not INLINE_SCRIPT.findall(html), f"inline <script> on {page}"
        assert not INLINE_STYLE.findall(html), (
            f"inline style or on* handler on {page}: {INLINE_STYLE.findall(html)[:3]}"
        )
