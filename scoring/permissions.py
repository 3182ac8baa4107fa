"""The one gate for permission-filtered reads (STYLE.md point 3).

A portfolio permission is effective when two things agree:

* the user's role (a group, ``scoring/roles.py``) carries it as a model-level
  permission: WHAT the user may do;
* the user, or a group of theirs, is granted it on the portfolio (a guardian
  object permission, made only by ``portfolio_access_grant``): WHERE.

Neither alone gives anything: model-level ("global") permissions never widen
access to a portfolio (``accept_global_perms=False``), and a grant without the
role does nothing. A superuser holds every role and every portfolio. An API token
may narrow its user to some portfolios (``scope_to_portfolios``), never widen.

Every queryset of portfolio data is restricted with ``portfolio_id IN (...)`` on
the indexed column, never guardian's generic join on a big table. An object
outside the user's portfolios is filtered out, so it answers exactly like a
missing one (404). Nothing is cached across requests: a revoked grant or role
takes effect on the next request.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import FieldDoesNotExist
from django.db.models import ForeignKey, Model, QuerySet
from guardian.shortcuts import get_objects_for_user
from rest_framework import permissions

from scoring.models import Portfolio
from scoring.roles import PORTFOLIO_PERMS, VIEW

__all__ = [
    "VIEW",
    "PortfolioActionPermission",
    "RestrictedAdminMixin",
    "has_portfolio_perm",
    "permitted_portfolio_ids",
    "portfolio_field_of",
    "restrict",
    "scope_to_portfolios",
]

_SCOPE_ATTR = "_scoring_portfolio_scope"


def scope_to_portfolios(user, portfolio_ids: Iterable[int] | None) -> None:
    """Narrow ``user`` (this in-memory object, i.e. this request) to ``portfolio_ids``;
    None removes the narrowing. Used by API token authentication."""
    setattr(user, _SCOPE_ATTR, None if portfolio_ids is None else frozenset(portfolio_ids))


def portfolio_scope(user) -> frozenset[int] | None:
    return getattr(user, _SCOPE_ATTR, None)


def permitted_portfolio_ids(user, perm: str = VIEW) -> list[int] | None:
    """Ids of the portfolios where ``user`` holds ``perm`` (role and grant); None means
    every portfolio (a superuser without a narrowed token)."""
    if perm not in PORTFOLIO_PERMS:
        raise ValueError(f"Unknown portfolio permission {perm!r}; known: {PORTFOLIO_PERMS}")
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    scope = portfolio_scope(user)
    if user.is_superuser:
        return None if scope is None else sorted(scope)
    # The role: a model-level permission, from the user's groups (or given to the user directly).
    if not user.has_perm(f"scoring.{perm}"):
        return []
    ids = get_objects_for_user(user, f"scoring.{perm}", klass=Portfolio, accept_global_perms=False).values_list(
        "id", flat=True
    )
    return sorted(i for i in ids if scope is None or i in scope)


def portfolio_field_of(model: type[Model]) -> str:
    """The column holding a model's portfolio: ``id`` for Portfolio itself,
    ``portfolio_id`` for every table that carries one."""
    if model is Portfolio:
        return "id"
    try:
        field = model._meta.get_field("portfolio")
    except FieldDoesNotExist:
        field = None
    if not isinstance(field, ForeignKey):
        raise ValueError(f"{model.__name__} has no portfolio column: pass field= (e.g. 'run__portfolio_id')")
    return field.attname


def restrict(queryset: QuerySet, user, *, field: str | None = None, perm: str = VIEW) -> QuerySet:
    """``queryset`` limited to rows of the portfolios where ``user`` holds ``perm``.

    ``field`` is the portfolio column; by default found from the model (``id`` for
    Portfolio, ``portfolio_id`` for the rest). Usable anywhere a queryset is built:
    viewsets, selectors, ``ModelAdmin.get_queryset``."""
    ids = permitted_portfolio_ids(user, perm)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{field or portfolio_field_of(queryset.model)}__in": ids})


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


class RestrictedAdminMixin:
    """For a ``ModelAdmin`` of portfolio data (or of Portfolio itself): the change
    list, the change form and every admin action see only the rows of the portfolios
    the user may view; another portfolio's row answers like a missing one.
    Set ``portfolio_field`` for a model that reaches its portfolio through a relation."""

    portfolio_field: str | None = None

    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user, field=self.portfolio_field)
