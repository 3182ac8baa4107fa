"""Portal pages of decisions under change control: the adverse-action notice and the
review queue for "refer". Thin: each parses, calls one service or selector, renders;
every rule of who may review is the service's (``scoring.services.reviews``), and its
refusals come back as messages."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from scoring import forms, selectors
from scoring.services import display
from scoring.services.errors import ServiceError
from scoring.services.notices import adverse_action_notice
from scoring.services.reviews import review_decide, review_may, review_release, review_take
from scoring.views import chosen_portfolio, found, page

QUEUE_PAGE_SIZE = 50


@login_required
@require_GET
def score_notice(request, score_id: int):
    """The printable adverse-action notice of a declined decision (audited when produced)."""
    score = found(selectors.score_get(user=request.user, score_id=score_id))
    notice = adverse_action_notice(score=score, user=request.user, request=request)
    return page(request, "scoring/notice.html", {"notice": notice, "portfolio": score.portfolio})


@login_required
@require_GET
def review_queue(request):
    """The referred applications of a portfolio waiting for a person, oldest first, and
    the review report of its model versions."""
    choice, portfolio = chosen_portfolio(request)
    state = request.GET.get("state") if request.GET.get("state") in selectors.REVIEW_STATES else ""
    context: dict = {"choice": choice, "portfolio": portfolio, "state": state, "states": selectors.REVIEW_STATES}
    if portfolio is not None:
        cases = selectors.review_queue(user=request.user, portfolio=portfolio, filters={"state": state})
        context["page_obj"] = Paginator(cases, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
        context["query"] = urlencode({"portfolio": portfolio.pk, **({"state": state} if state else {})})
        context["can_review"] = review_may(request.user, portfolio.pk)
        context["report"] = selectors.review_report(user=request.user, portfolio=portfolio)
    return page(request, "scoring/review_queue.html", context)


@login_required
@require_GET
def review_case(request, score_id: int):
    """One referred case: the decision, PD, points, reasons, the applicant's history, and
    the take / release / decide forms for an underwriter."""
    score = found(selectors.review_case_get(user=request.user, score_id=score_id))
    applicant = score.applicant
    assert applicant is not None  # a case is an applicant's decision
    review = getattr(score, "review", None)  # None until someone takes the case
    decisions = selectors.applicant_scores(user=request.user, applicant=applicant, limit=20)
    reviews = selectors.applicant_reviews(user=request.user, applicant=applicant)
    for s in decisions:
        s.final_review = reviews.get(s.pk)  # type: ignore[attr-defined]
    context = {
        "score": score,
        "portfolio": score.portfolio,
        "applicant": applicant,
        "review": review,
        "reasons": display.reasons_labelled(score.portfolio.schema, score.reasons),
        "features": display.feature_rows(applicant.schema, applicant.features),
        "decisions": decisions,
        "history": selectors.applicant_history(user=request.user, applicant=applicant)[-12:],
        "is_open": selectors.review_case_is_open(score=score),
        "can_review": review_may(request.user, score.portfolio_id),
        "form": forms.ReviewDecisionForm(),
    }
    return page(request, "scoring/review_case.html", context)


def _act(request, score_id: int, step):
    score = found(selectors.review_case_get(user=request.user, score_id=score_id))
    try:
        message = step(score)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    return redirect("portal:review_case", score_id=score.pk)


@login_required
@require_POST
def review_case_take(request, score_id: int):
    def take(score):
        review_take(score=score, user=request.user, request=request)
        return "The case is yours: nobody else can take it until you release or decide it."

    return _act(request, score_id, take)


@login_required
@require_POST
def review_case_release(request, score_id: int):
    def release(score):
        review_release(score=score, user=request.user, request=request)
        return "The case is back in the queue."

    return _act(request, score_id, release)


@login_required
@require_POST
def review_case_decide(request, score_id: int):
    form = forms.ReviewDecisionForm(request.POST)

    def decide(score):
        if not form.is_valid():
            problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
            raise _FormInvalid(f"The decision was not recorded ({problems}).")
        review = review_decide(score=score, user=request.user, request=request, **form.cleaned_data)
        kind = "an override of the model" if review.is_override else "resolved by review"
        return f"Decided: {review.decision} ({kind})."

    return _act(request, score_id, decide)


class _FormInvalid(ServiceError):
    code = "invalid_review"
