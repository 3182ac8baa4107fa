"""The one gate for permission-filtered reads (STYLE.md point 3).

Access is granted on portfolios only (django-guardian object permissions).
Every queryset of portfolio data is restricted with ``portfolio_id IN (...)``
on the indexed column, never guardian's generic join on a big table; model-level
("global") permissions never widen access; a superuser sees everything. An object
outside the user's portfolios is filtered out, so it answers exactly like a
missing one (404).
"""

from __future__ import annotations

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user
from rest_framework import permissions

from scoring.models import Portfolio

VIEW = "view_portfolio_data"


def permitted_portfolio_ids(user, perm: str = VIEW) -> list[int] | None:
    """Ids of the portfolios ``user`` holds ``perm`` on; None means all (superuser)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    if user.is_superuser:
        return None
    return list(
        get_objects_for_user(user, f"scoring.{perm}", klass=Portfolio, accept_global_perms=False).values_list(
            "id", flat=True
        )
    )


def restrict(queryset: QuerySet, user, *, field: str = "portfolio_id", perm: str = VIEW) -> QuerySet:
    """``queryset`` limited to rows of the portfolios ``user`` may see."""
    ids = permitted_portfolio_ids(user, perm)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{field}__in": ids})


def has_portfolio_perm(user, portfolio: Portfolio | int, perm: str) -> bool:
    ids = permitted_portfolio_ids(user, perm)
    portfolio_id = portfolio if isinstance(portfolio, int) else portfolio.pk
    return ids is None or portfolio_id in ids


class PortfolioActionPermission(permissions.BasePermission):
    """An action needing more than viewing (score, import, export, train, validate):
    the object is visible (else 404 already), but without the grant the answer is 403."""

    def has_object_permission(self, request, view, obj) -> bool:
        perm = getattr(view, "required_portfolio_perms", {}).get(view.action)
        if perm is None:
            return True
        portfolio_id = obj.pk if isinstance(obj, Portfolio) else obj.portfolio_id
        return has_portfolio_perm(request.user, portfolio_id, perm)
