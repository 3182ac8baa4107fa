"""API token authentication: ``Authorization: Token <key>``.

The key is looked up by its SHA-256 (``scoring.services.tokens``). A token
narrowed to some portfolios narrows its user for this request only, through the
gate (``scoring.permissions.scope_to_portfolios``): the token can never reach
more than its user could, and the user's grants and roles are read afresh on
every request, so a revocation takes effect on the next one.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication, exceptions

from scoring.permissions import scope_to_portfolios
from scoring.services.tokens import api_token_authenticate, api_token_portfolio_ids


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # another scheme (or none): let the next authenticator try
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected 'Token <key>'.")
        try:
            key = header[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the key is not ASCII.") from None
        token = api_token_authenticate(key)
        if token is None:
            # One message for unknown, revoked and expired keys: a caller learns nothing more.
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        user = token.user
        scope_to_portfolios(user, api_token_portfolio_ids(token))
        return user, token

    def authenticate_header(self, request) -> str:
        return self.keyword  # a 401 (not 403) with WWW-Authenticate: Token


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the scheme in the OpenAPI schema (``tokenAuth``: ``Authorization: Token <key>``)."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="AUTHORIZATION", token_prefix="Token")  # noqa: S106
