"""Portal pages of the credit policy: the policy in force and its versions (view grant),
a version's impact and changes, proposing a change with the strategy rules as an
editable decision table, and approving or rejecting a proposal (policy grant). Thin:
every rule of who may and what is valid is ``scoring.services.policy``'s; its refusals
come back as messages (four eyes) or beside the form's fields (a rule that does not parse)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from scoring import forms_policy, selectors
from scoring.models import PolicyVersion
from scoring.permissions import restrict
from scoring.roles import POLICY
from scoring.services.errors import ServiceError
from scoring.services.policy import (
    CUTOFF_FIELDS,
    SCALE_FIELDS,
    policy_approve,
    policy_changes,
    policy_current,
    policy_impact,
    policy_may_manage,
    policy_propose,
    policy_reject,
    policy_state,
    rule_input_names,
)
from scoring.views import chosen_portfolio, found, page, require_perm

DECISION_REASON_MAX = 2000


def _versions(portfolio):
    rows = list(
        PolicyVersion.objects.filter(portfolio=portfolio)
        .select_related("proposed_by", "decided_by", "based_on")
        .order_by("-version")
    )
    for row in rows:
        row.state = policy_state(row, in_force_id=portfolio.policy_version_id)
    return rows


@login_required
@require_GET
def policy_page(request):
    """The policy in force of a portfolio (scale, cutoffs, strategy rules, catalogue size)
    and every version with its status, who proposed and decided it and when."""
    choice, portfolio = chosen_portfolio(request)
    context: dict = {"choice": choice, "portfolio": portfolio}
    if portfolio is not None:
        in_force = policy_current(portfolio=portfolio)
        portfolio.policy_version_id = in_force.pk
        context.update(
            in_force=in_force,
            versions=_versions(portfolio),
            can_manage=policy_may_manage(request.user, portfolio),
        )
    return page(request, "scoring/policy.html", context)


def _version(request, version_id: int) -> PolicyVersion:
    queryset = restrict(PolicyVersion.objects.select_related("portfolio", "proposed_by", "decided_by", "based_on"),
                        request.user)  # fmt: skip
    return found(queryset.filter(pk=version_id).first())


@login_required
@require_GET
def policy_version(request, version_id: int):
    """One version: its content, its changes against the version it was proposed on, its
    impact on the last batch run's stored scores, and the approve / reject form."""
    version = _version(request, version_id)
    portfolio = version.portfolio
    version.state = policy_state(version, in_force_id=portfolio.policy_version_id)  # type: ignore[attr-defined]
    context = {
        "portfolio": portfolio,
        "version": version,
        "changes": sorted(policy_changes(policy_version=version).items()),
        "impact": policy_impact(policy_version=version) if version.status == PolicyVersion.STATUS_PROPOSED else None,
        "can_manage": policy_may_manage(request.user, portfolio),
        "reason_max": DECISION_REASON_MAX,
    }
    return page(request, "scoring/policy_version.html", context)


@login_required
@require_POST
def policy_decide(request, version_id: int):
    """Approve or reject a proposal with a reason; the service refuses the proposer (four eyes)."""
    version = _version(request, version_id)
    require_perm(request.user, version.portfolio_id, POLICY, "decide the credit policy")
    decision, reason = request.POST.get("decision"), request.POST.get("reason", "").strip()
    decide = {"approve": policy_approve, "reject": policy_reject}.get(decision or "")
    if decide is None or not reason or len(reason) > DECISION_REASON_MAX:
        messages.error(
            request, f"Choose approve or reject and give a reason (at most {DECISION_REASON_MAX} characters)."
        )
        return redirect("portal:policy_version", version_id=version.pk)
    try:
        decide(policy_version=version, user=request.user, reason=reason)
    except ServiceError as error:  # four eyes, decided already, stale: audited as denied by the service
        messages.error(request, error.message)
    else:
        done = "approved: it is in force now" if decision == "approve" else "rejected"
        messages.success(request, f"Policy v{version.version} {done}.")
    return redirect("portal:policy_version", version_id=version.pk)


def _slots(request, rules: list[dict]) -> int:
    try:
        asked = int(request.POST.get("condition_slots", ""))
    except ValueError:
        return forms_policy.slots_for(rules)
    return max(1, min(forms_policy.MAX_SLOTS, asked))


@login_required
@require_http_methods(["GET", "POST"])
def policy_propose_view(request, portfolio_id: int):
    """Propose a change: the scale and cutoffs, and the strategy rules as a decision table
    (a row per rule; "Add a row" and "Add a condition" re-render the table, a checkbox
    removes a row). Submitting calls ``policy_propose``."""
    portfolio = found(selectors.portfolios_visible(user=request.user).select_related("schema").filter(pk=portfolio_id).first())  # fmt: skip
    require_perm(request.user, portfolio.pk, POLICY, "propose a credit policy")
    current = policy_current(portfolio=portfolio)
    inputs = rule_input_names(portfolio)
    stored_rules = list(current.rules or [])
    if request.method == "GET":
        slots = forms_policy.slots_for(stored_rules)
        initial: dict = {name: getattr(current, name) for name in (*SCALE_FIELDS, *CUTOFF_FIELDS)}
        form = forms_policy.PolicyProposeForm(initial={**initial, "condition_slots": slots})
        rows = forms_policy.RuleFormSet(
            initial=forms_policy.rule_initial(stored_rules), prefix="rules", inputs=inputs, slots=slots
        )
        return _propose_page(request, portfolio, current, form, rows)

    data = request.POST.copy()
    slots = _slots(request, stored_rules)
    if "add_condition" in data:
        slots = min(forms_policy.MAX_SLOTS, slots + 1)
    if "add_row" in data:
        data["rules-TOTAL_FORMS"] = str(int(data.get("rules-TOTAL_FORMS", "0") or 0) + 1)
    data["condition_slots"] = str(slots)
    form = forms_policy.PolicyProposeForm(data)
    rows = forms_policy.RuleFormSet(data, prefix="rules", inputs=inputs, slots=slots)
    if "add_row" in data or "add_condition" in data:
        return _propose_page(request, portfolio, current, form, rows)
    if form.is_valid() and rows.is_valid():
        changes = {**form.changes(), "rules": rows.rules()}
        try:
            proposal = policy_propose(
                portfolio=portfolio, user=request.user, changes=changes, comment=form.cleaned_data["comment"]
            )
        except ServiceError as error:  # cutoffs out of order, nothing changed, a rule (by number), ...
            form.add_error(None, error.message)
        else:
            messages.success(
                request, f"Proposed as policy v{proposal.version}: in force once a second officer approves it."
            )
            return redirect("portal:policy_version", version_id=proposal.pk)
    return _propose_page(request, portfolio, current, form, rows, status=400)


def _propose_page(request, portfolio, current, form, rows, *, status: int = 200):
    context = {"portfolio": portfolio, "current": current, "form": form, "rows": rows,
               "slot_numbers": range(1, rows.slots + 1)}  # fmt: skip
    return page(request, "scoring/policy_propose.html", context, status=status)
