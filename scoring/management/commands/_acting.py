"""The acting user of a management command (``--as USER``): commands act for a person,
checked as the API checks that person, so what a command records (who trained a model)
is as trustworthy as what the API records."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from scoring.permissions import has_portfolio_perm


def add_as_argument(parser, *, what: str) -> None:
    parser.add_argument(
        "--as", dest="acting_user", required=True, metavar="USER",
        help=f"the user {what} (recorded and checked like an API caller: role and portfolio grant)",
    )  # fmt: skip


def acting_user(username: str, *, portfolio, perm: str):
    """The active user named ``username`` holding ``perm`` on ``portfolio``, or CommandError."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None or not user.is_active:
        raise CommandError(f"No active user named {username!r}.")
    if not has_portfolio_perm(user, portfolio, perm):
        raise CommandError(f"{username} may not do this in {portfolio}: the role and a grant with {perm} are needed.")
    return user
