"""Reads. Every read of portfolio data goes through ``portfolios_visible`` so no
page or endpoint can forget the access rule."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from guardian.shortcuts import get_objects_for_user

from scoring.models import Portfolio


def portfolios_visible(*, user, perm: str = "scoring.view_portfolio_data") -> QuerySet[Portfolio]:
    """Portfolios granted to ``user`` by an object permission. Model-level (global)
    permissions never widen access; superusers see everything."""
    if not user.is_authenticated or not user.is_active:
        return Portfolio.objects.none()
    if user.is_superuser:
        return Portfolio.objects.all()
    return get_objects_for_user(user, perm, klass=Portfolio, accept_global_perms=False)


def portfolio_list(*, user) -> QuerySet[Portfolio]:
    return portfolios_visible(user=user).select_related("schema").annotate(applicant_count=Count("applicants"))
