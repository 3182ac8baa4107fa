"""Portal actions of a validator on a model version: write a validation note, reject
the version. Thin: each checks the grant, calls one service, says what happened."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from scoring import selectors
from scoring.services.errors import ServiceError
from scoring.services.registry import model_version_reject
from scoring.services.validation import validation_note_add
from scoring.views import found, require_perm


def _version(request, version_id: int):
    version = found(selectors.model_version_get(user=request.user, version_id=version_id))
    require_perm(request.user, version.portfolio_id, "validate_portfolio", "validate models")
    return version


@login_required
@require_POST
def model_note(request, version_id: int):
    version = _version(request, version_id)
    try:
        validation_note_add(version=version, user=request.user, text=request.POST.get("text", ""), request=request)
    except ServiceError as exc:  # empty or too long
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Validation note added to model v{version.version}.")
    return redirect("portal:model_detail", version_id=version.pk)


@login_required
@require_POST
def model_reject(request, version_id: int):
    version = _version(request, version_id)
    try:
        model_version_reject(version=version, user=request.user, reason=request.POST.get("reason", ""), request=request)
    except ServiceError as exc:  # no reason, the champion, or already rejected
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Model version {version.version} rejected.")
    return redirect("portal:model_detail", version_id=version.pk)
