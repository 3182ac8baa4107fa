"""API tokens: credentials of API clients. A token acts as its user, optionally
narrowed to some portfolios (never widened), until it expires or is revoked.

The key is shown once, at creation; only its SHA-256 is stored, so a copy of
the database does not hold usable credentials. A key has 256 bits of randomness,
so an unsalted fast hash is enough: nothing to brute-force, unlike a password.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from scoring.models import ApiToken, Portfolio
from scoring.services.errors import ServiceError

KEY_PREFIX_LENGTH = 8
# last_used_at is written at most this often per token: a busy client must not turn
# every request into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ServiceError, ValueError):
    """The token cannot be created as asked."""


def api_token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(
    *, user, name: str, portfolios: Iterable[Portfolio] | None = None, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token of ``user`` and its key, which is returned here only.

    ``portfolios`` narrows the token to those portfolios (each still needs the
    user's own role and grant); None or empty: every portfolio the user may use."""
    if not user.is_active:
        raise TokenError(f"{user} is inactive.")
    if not name.strip():
        raise TokenError("A token needs a name (what uses it).")
    if expires_at is not None and expires_at <= timezone.now():
        raise TokenError("The expiry is in the past.")
    chosen = list(portfolios or ())
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip(),
        key_prefix=key[:KEY_PREFIX_LENGTH],
        key_hash=api_token_hash(key),
        narrowed=bool(chosen),
        expires_at=expires_at,
    )
    if chosen:
        token.portfolios.set(chosen)
    return token, key


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke ``token`` from now on (idempotent: the first revocation time is kept)."""
    from scoring.caches import invalidate

    with transaction.atomic():
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        invalidate()  # an update() sends no signal: every process drops its cached token now
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_token_authenticate(key: str) -> ApiToken | None:
    """The live token with this key (with its user loaded), or None: unknown, revoked,
    expired, or its user inactive."""
    now = timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=api_token_hash(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_portfolio_ids(token: ApiToken) -> list[int] | None:
    """The portfolios a token is narrowed to; None when it is not narrowed."""
    if not token.narrowed:
        return None
    return list(token.portfolios.values_list("id", flat=True))
