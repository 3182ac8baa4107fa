"""Granting access to portfolios and giving roles. The only place object
permissions are assigned (STYLE.md point 4): every grant goes through
``portfolio_access_grant``, every removal through ``portfolio_access_revoke``.

A role (``scoring/roles.py``) says what a user may do, a grant on a portfolio
says where; ``scoring.permissions`` allows an action only where both agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group
from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from scoring.audit import audit_record
from scoring.models import Portfolio
from scoring.roles import PORTFOLIO_PERMS, VIEW, role_get

__all__ = [
    "PORTFOLIO_PERMS",
    "portfolio_access_grant",
    "portfolio_access_revoke",
    "user_role_add",
    "user_role_remove",
]


def _checked(perms: Iterable[str]) -> tuple[str, ...]:
    perms = tuple(dict.fromkeys(perms))
    unknown = [p for p in perms if p not in PORTFOLIO_PERMS]
    if unknown:
        raise ValueError(f"Unknown portfolio permission(s) {unknown}; known: {PORTFOLIO_PERMS}")
    return perms


def _audit(action: str, *, actor, grantee, portfolio: Portfolio | None = None, **details) -> None:
    kind = "group" if isinstance(grantee, Group) else "user"
    audit_record(
        action=action, actor=actor, portfolio_id=portfolio.pk if portfolio is not None else None,
        object_type=kind, object_ids=[grantee.pk], details=details,
    )  # fmt: skip


def _role_group(role: str) -> Group:
    group, _ = Group.objects.get_or_create(name=role_get(role).name)
    return group


@transaction.atomic
def user_role_add(*, user, role: str, actor=None) -> None:
    """Give ``user`` the role (membership of its group); it acts only in granted portfolios.
    Refused (and recorded) when the role carries rights ``actor`` does not hold."""
    from scoring.services.users import recorded_by_service, user_change_check

    group = _role_group(role)
    user_change_check(actor=actor, user=user, groups=[*user.groups.all(), group])
    with recorded_by_service():
        user.groups.add(group)
    _audit("permission.grant", actor=actor, grantee=user, role=role)


@transaction.atomic
def user_role_remove(*, user, role: str, actor=None) -> None:
    """Take the role away; the user's grants stay but no longer allow what only this role did."""
    from scoring.services.users import recorded_by_service, user_change_check

    user_change_check(actor=actor, user=user)  # a superuser's roles are a superuser's business
    with recorded_by_service():
        user.groups.remove(_role_group(role))
    _audit("permission.revoke", actor=actor, grantee=user, role=role)


@transaction.atomic
def portfolio_access_grant(
    *, portfolio: Portfolio, grantee, role: str | None = None, perms: Iterable[str] | None = None, actor=None
) -> tuple[str, ...]:
    """Grant ``grantee`` (a user or a group) access to ``portfolio``; returns the
    permissions granted.

    With ``role``: a user is given the role too, and the grant carries the role's
    portfolio permissions (or only ``perms``, which must be among them). A group
    (a team) gets the grant only: each member acts as far as their own role allows.
    Without ``role``: exactly ``perms`` (default: view); they take effect for users
    whose role carries them.
    """
    if role is not None:
        allowed = role_get(role).portfolio_perms
        granted = _checked(allowed if perms is None else perms)
        beyond = [p for p in granted if p not in allowed]
        if beyond:
            raise ValueError(f"The {role} role does not carry {beyond}; it carries {allowed}")
        if not isinstance(grantee, Group):
            user_role_add(user=grantee, role=role, actor=actor)
    else:
        granted = _checked((VIEW,) if perms is None else perms)
    for perm in granted:
        assign_perm(f"scoring.{perm}", grantee, portfolio)
    _audit("permission.grant", actor=actor, grantee=grantee, portfolio=portfolio, perms=list(granted))
    return granted


@transaction.atomic
def portfolio_access_revoke(
    *, portfolio: Portfolio, grantee, perms: Iterable[str] | None = None, actor=None
) -> tuple[str, ...]:
    """Take back ``perms`` (default: every permission) on ``portfolio`` from a user or
    group. Effective from the grantee's next request. Roles are left as they are: the
    user may hold grants elsewhere."""
    revoked = _checked(PORTFOLIO_PERMS if perms is None else perms)
    for perm in revoked:
        remove_perm(f"scoring.{perm}", grantee, portfolio)
    _audit("permission.revoke", actor=actor, grantee=grantee, portfolio=portfolio, perms=list(revoked))
    return revoked
