"""Portal actions of a validator on a model version: write a validation note, reject
the version, roll back (restore a retired version, or the previous champion). Thin:
each checks the grant, calls one service, says what happened."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from scoring import selectors
from scoring.models import Portfolio
from scoring.permissions import restrict
from scoring.services.errors import ServiceError
from scoring.services.registry import (
    champion_of,
    champion_restore_previous,
    model_version_reject,
    model_version_restore,
)
from scoring.services.validation import validation_note_add
from scoring.views import found, require_perm


def _version(request, version_id: int):
    version = found(selectors.model_version_get(user=request.user, version_id=version_id))
    require_perm(request.user, version.portfolio_id, "validate_portfolio", "validate models")
    return version


def _on_version(request, version, act, success: str):
    """Run ``act()`` (one service call on ``version``), say what happened (the service's
    refusal or ``success``) and go back to the version's page."""
    try:
        act()
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect("portal:model_detail", version_id=version.pk)


@login_required
@require_POST
def model_note(request, version_id: int):
    version = _version(request, version_id)
    text = request.POST.get("text", "")
    return _on_version(  # refused: empty or too long
        request,
        version,
        lambda: validation_note_add(version=version, user=request.user, text=text, request=request),
        f"Validation note added to model v{version.version}.",
    )


@login_required
@require_POST
def model_reject(request, version_id: int):
    version = _version(request, version_id)
    reason = request.POST.get("reason", "")
    return _on_version(  # refused: no reason, the champion, or already rejected
        request, version,
        lambda: model_version_reject(version=version, user=request.user, reason=reason, request=request),
        f"Model version {version.version} rejected.",
    )  # fmt: skip


@login_required
@require_POST
def model_restore(request, version_id: int):
    """Rollback: this retired, once approved version becomes champion again."""
    version = _version(request, version_id)
    reason = request.POST.get("reason", "")
    return _on_version(  # refused: no reason, not retired, never approved, four eyes
        request, version,
        lambda: model_version_restore(version=version, user=request.user, reason=reason, request=request),
        f"Model version {version.version} restored as champion.",
    )  # fmt: skip


@login_required
@require_POST
def champion_restore(request, portfolio_id: int):
    """One-click rollback: the previous champion of the portfolio becomes champion again."""
    portfolio = found(restrict(Portfolio.objects.all(), request.user, field="id").filter(pk=portfolio_id).first())
    require_perm(request.user, portfolio.pk, "validate_portfolio", "validate models")
    try:
        version = champion_restore_previous(
            portfolio=portfolio, user=request.user, reason=request.POST.get("reason", ""), request=request
        )
    except ServiceError as exc:  # no previous champion, no reason, four eyes
        messages.error(request, exc.message)
        champion = champion_of(portfolio)
        return redirect("portal:model_detail", version_id=champion.pk) if champion else redirect("portal:model_list")
    messages.success(request, f"Model version {version.version} restored as champion of {portfolio}.")
    return redirect("portal:model_detail", version_id=version.pk)
