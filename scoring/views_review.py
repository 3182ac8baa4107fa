"""Portal pages of decisions under change control: the adverse-action notice (and, to
come, the review queue). Thin: each parses, calls one service, renders."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.views.decorators.http import require_GET

from scoring import selectors
from scoring.services.notices import adverse_action_notice
from scoring.views import found, page


@login_required
@require_GET
def score_notice(request, score_id: int):
    """The printable adverse-action notice of a declined decision (audited when produced)."""
    score = found(selectors.score_get(user=request.user, score_id=score_id))
    notice = adverse_action_notice(score=score, user=request.user, request=request)
    return page(request, "scoring/notice.html", {"notice": notice, "portfolio": score.portfolio})
