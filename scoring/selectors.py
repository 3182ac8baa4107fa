"""Reads. Every read of portfolio data goes through ``portfolios_visible`` so no
page or endpoint can forget the access rule."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from scoring.models import Portfolio
from scoring.permissions import VIEW, restrict


def portfolios_visible(*, user, perm: str = VIEW) -> QuerySet[Portfolio]:
    """Portfolios granted to ``user`` (see ``scoring.permissions``)."""
    return restrict(Portfolio.objects.all(), user, field="id", perm=perm)


def portfolio_list(*, user) -> QuerySet[Portfolio]:
    return portfolios_visible(user=user).select_related("schema").annotate(applicant_count=Count("applicants"))
