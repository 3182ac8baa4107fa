"""API tokens: shown once, stored as SHA-256, narrowed to portfolios through the
gate, refused once expired or revoked, and never cached across requests."""

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from scoring.models import ApiToken, Portfolio
from scoring.services.access import portfolio_access_grant, portfolio_access_revoke
from scoring.services.tokens import TokenError, api_token_create, api_token_revoke
from tests.factories import PortfolioFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def books():
    a, b = PortfolioFactory(name="Book A"), PortfolioFactory(name="Book B")
    analyst = UserFactory(username="ana")
    for portfolio in (a, b):
        portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    return a, b, analyst


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def portfolio_ids(client: APIClient) -> set[int]:
    response = client.get("/api/v1/portfolios/")
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_the_key_is_returned_once_and_only_its_sha256_is_stored(books):
    _, _, analyst = books
    token, key = api_token_create(user=analyst, name="scoring robot")
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(stored.key_prefix) and len(stored.key_prefix) < len(key) // 4
    assert key not in {str(value) for value in ApiToken.objects.values().get(pk=token.pk).values()}
    assert len(key) >= 40  # 32 random bytes


def test_a_token_authenticates_as_its_user_with_the_token_header(books):
    a, b, analyst = books
    _, key = api_token_create(user=analyst, name="robot")
    assert portfolio_ids(client_with(key)) == {a.pk, b.pk}
    assert ApiToken.objects.get(key_hash=hashlib.sha256(key.encode()).hexdigest()).last_used_at is not None


@pytest.mark.parametrize("header", ["Token nope", "Token", "Token a b", "Token \u00e9t\u00e9"])
def test_unknown_or_malformed_keys_answer_401_with_the_token_challenge(books, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/portfolios/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_narrowed_token_reaches_only_its_portfolios_and_never_more_than_its_user(books):
    a, b, analyst = books
    c = PortfolioFactory(name="Book C")  # not granted to the user
    _, key = api_token_create(user=analyst, name="book b only", portfolios=[b, c])
    client = client_with(key)
    assert portfolio_ids(client) == {b.pk}
    assert client.get(f"/api/v1/portfolios/{a.pk}/").status_code == 404
    assert client.get(f"/api/v1/portfolios/{c.pk}/").status_code == 404


def test_a_narrowed_token_whose_portfolios_are_gone_reaches_nothing(books):
    _a, _b, analyst = books
    spare = PortfolioFactory(name="Spare")
    portfolio_access_grant(portfolio=spare, grantee=analyst, role="analyst")
    _, key = api_token_create(user=analyst, name="spare only", portfolios=[spare])
    Portfolio.objects.filter(pk=spare.pk).delete()
    assert portfolio_ids(client_with(key)) == set()


def test_revoked_expired_and_inactive_users_tokens_are_refused(books):
    _, _, analyst = books
    token, key = api_token_create(user=analyst, name="robot")
    client = client_with(key)
    assert client.get("/api/v1/portfolios/").status_code == 200
    first = api_token_revoke(token=token).revoked_at
    assert api_token_revoke(token=token).revoked_at == first  # idempotent
    assert client.get("/api/v1/portfolios/").status_code == 401

    token, key = api_token_create(user=analyst, name="short", expires_at=timezone.now() + timedelta(hours=1))
    assert client_with(key).get("/api/v1/portfolios/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_with(key).get("/api/v1/portfolios/").status_code == 401

    _, key = api_token_create(user=analyst, name="third")
    type(analyst).objects.filter(pk=analyst.pk).update(is_active=False)
    assert client_with(key).get("/api/v1/portfolios/").status_code == 401


def test_revoking_a_grant_takes_effect_on_the_tokens_next_request(books):
    a, b, analyst = books
    _, key = api_token_create(user=analyst, name="robot")
    client = client_with(key)
    assert portfolio_ids(client) == {a.pk, b.pk}
    portfolio_access_revoke(portfolio=a, grantee=analyst)
    assert portfolio_ids(client) == {b.pk}
    assert client.get(f"/api/v1/portfolios/{a.pk}/").status_code == 404


def test_tokens_are_not_created_for_inactive_users_or_in_the_past(books):
    _, _, analyst = books
    with pytest.raises(TokenError, match="past"):
        api_token_create(user=analyst, name="x", expires_at=timezone.now() - timedelta(days=1))
    with pytest.raises(TokenError, match="name"):
        api_token_create(user=analyst, name="  ")
    with pytest.raises(TokenError, match="inactive"):
        api_token_create(user=UserFactory(is_active=False), name="x")


def test_create_api_token_prints_only_the_key_on_stdout_and_the_key_works(books):
    _a, b, _analyst = books
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "ana", "--name", "curl", "--portfolio", "Book B", "--expires-days", "7",
                 stdout=out, stderr=err)  # fmt: skip
    key = out.getvalue().strip()
    assert "\n" not in key and "Book B" in err.getvalue() and key not in err.getvalue()
    token = ApiToken.objects.get(name="curl")
    assert token.narrowed and list(token.portfolios.all()) == [b] and token.expires_at is not None
    assert portfolio_ids(client_with(key)) == {b.pk}
    with pytest.raises(CommandError, match="No portfolio"):
        call_command("create_api_token", "ana", "--portfolio", "Book Z", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", "nobody", stdout=StringIO(), stderr=StringIO())
