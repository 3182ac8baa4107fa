"""Portal buttons to retry a failed training, tuning study or import and to cancel a
queued one. The rules are the service's (scoring.services.jobs); a refusal (a
ServiceError) is shown by the portal's one error middleware."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from scoring.permissions import restrict
from scoring.services import jobs

# Where each kind's page is, to go back to after the action.
DETAIL = {"training": "portal:model_detail", "import": "portal:import_detail", "tuning": "portal:model_list"}


@login_required
@require_POST
def job_action(request, kind: str, pk: int, action: str):
    if kind not in jobs.MODELS or action not in ("retry", "cancel"):
        raise Http404("Not found")
    model, argument = jobs.MODELS[kind]
    obj = restrict(model.objects.all(), request.user, field="portfolio_id").filter(pk=pk).first()
    if obj is None:
        raise Http404("Not found")
    table = jobs.RETRY if action == "retry" else jobs.CANCEL
    obj = table[kind](**{argument: obj, "user": request.user})
    messages.success(request, f"{kind.title()} #{obj.pk}: {'retried' if action == 'retry' else 'cancelled'}.")
    return redirect(DETAIL[kind], obj.pk) if kind != "tuning" else redirect(DETAIL[kind])
