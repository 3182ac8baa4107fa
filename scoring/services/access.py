"""Granting access to portfolios. The only place object permissions are assigned
(STYLE.md point 4): every grant goes through ``portfolio_access_grant``."""

from __future__ import annotations

from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from scoring.models import Portfolio

# What each kind of grant allows on a portfolio; roles (groups) decide which
# actions a user may take at all, grants decide where.
PORTFOLIO_PERMS = (
    "view_portfolio_data",
    "score_portfolio",
    "import_portfolio",
    "export_portfolio",
    "train_portfolio",
    "validate_portfolio",
)


@transaction.atomic
def portfolio_access_grant(*, portfolio: Portfolio, grantee, perms: tuple[str, ...] = ("view_portfolio_data",)) -> None:
    """Grant ``perms`` on ``portfolio`` to a user or group."""
    for perm in perms:
        if perm not in PORTFOLIO_PERMS:
            raise ValueError(f"Unknown portfolio permission {perm!r}; known: {PORTFOLIO_PERMS}")
        assign_perm(f"scoring.{perm}", grantee, portfolio)


@transaction.atomic
def portfolio_access_revoke(*, portfolio: Portfolio, grantee, perms: tuple[str, ...] = PORTFOLIO_PERMS) -> None:
    for perm in perms:
        remove_perm(f"scoring.{perm}", grantee, portfolio)
