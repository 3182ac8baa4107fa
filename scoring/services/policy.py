"""Credit policy under change control: versioned, immutable, proposed by one person and
approved by another, and applied by ONE pure function on every path.

A portfolio's policy is the points scale, the approve/decline cutoffs, the reason-code
catalogue and the strategy rules. Each change is a new :class:`PolicyVersion`
(``policy_propose``); a second person holding the policy role on the portfolio, never
the proposer, approves it (``policy_approve``), which puts it in force. Both steps are
audited in the hash chain with the content before and after. The admin's edits of a
portfolio's cutoffs call ``policy_propose`` too.

Deciding: :func:`policy_decide` turns calibrated log-odds of default and the applicant's
features into PD, points, the decision and the rules that fired, under a given
:class:`Policy`. Real-time scoring, batch chunks, what-if and replay all call it (the
real-time path of the platform too), so a rule or cutoff behaves the same everywhere.
It reads nothing from the database: a version is immutable, so :func:`policy_of` caches
the parsed policy per process by id forever, and a score replays under the version
it names.

Strategy rules, evaluated after the model: a table of rows, each with an ``action``
(``knockout``, ``refer`` or ``approve``), a reason ``code`` and ``text``, and
``conditions`` mapping an input (a feature, ``pd``, ``score``, or a history fact) to a
GoRules/zen unary expression, the cell language of a JDM decision table (``< 18``,
``> 0.45``, ``[18..65]``, ``"A14", "A13"``). A row fires when all its conditions hold
(a condition on a missing value holds only if it tests for ``null``). Precedence:

* any knock-out fires → decline;
* else the cutoffs decide; a refer rule turns an approve into a refer;
* an approve rule turns a cutoff refer into an approve (never a decline, never a refer rule's refer).

Why zen's compiled unary expressions and not its decision-graph evaluator: measured on
this machine, ``ZenDecision.evaluate`` of a two-row table costs ~230 µs a row (1.1 s
for a 5,000-row batch chunk) while a compiled cell costs ~0.7 µs; the cell semantics
are the engine's own, and ``policy_rules_jdm`` exports the same table as a JDM
document the GoRules editor opens (a test checks both give the same hits).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import zen
from django.db import transaction
from django.utils import timezone

from models.scaling import APPROVE, DECLINE, REFER, PointsScale
from scoring.caches import invalidate
from scoring.models import PolicyVersion, Portfolio
from scoring.services.errors import ConflictError, ForbiddenError, ServiceError

KNOCKOUT, RULE_REFER, RULE_APPROVE = "knockout", "refer", "approve"
RULE_ACTIONS = (KNOCKOUT, RULE_REFER, RULE_APPROVE)
# Inputs a rule may read besides the schema's features.
MODEL_INPUTS = ("pd", "score")
HISTORY_INPUTS = ("history.late_last_6m", "history.late_earlier", "history.months_observed")
SCALE_FIELDS = ("base_score", "base_odds", "pdo")
CUTOFF_FIELDS = ("approve_min_score", "decline_below_score")


class PolicyError(ServiceError):
    """The proposed policy is not valid (cutoffs out of order, a rule that does not parse, ...)."""

    code = "invalid_policy"


class PolicyForbidden(ForbiddenError):
    """Only a holder of the policy role on the portfolio may do this (and never approve their own proposal)."""

    code = "policy_forbidden"


class PolicyConflict(ConflictError):
    """The policy version is not in a state that allows this (already decided, superseded)."""

    code = "policy_conflict"


# --- The pure part -------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One row of the strategy table."""

    code: str
    action: str
    text: str
    conditions: tuple[tuple[str, str], ...]  # (input, unary expression)


@dataclass(frozen=True, eq=False)
class Policy:
    """A policy version as the deciding code reads it (no database, no Django model)."""

    id: int | None
    version: int
    scale: PointsScale
    approve_min_score: float
    decline_below_score: float
    catalogue: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    @property
    def inputs(self) -> frozenset[str]:
        """Every input some rule reads."""
        return frozenset(name for rule in self.rules for name, _ in rule.conditions)

    def describe(self) -> str:
        return f"policy v{self.version}" if self.id is not None else "the policy in force (score predates versioning)"


@dataclass
class PolicyOutcome:
    """Per row: PD, points, the final decision, the cutoffs' decision and the rules that fired."""

    pd: list[float]
    score: list[float]
    decision: list[str]
    cutoff_decision: list[str]
    rule_hits: list[list[dict]]


_compiled: dict[str, Any] = {}
_compile_lock = threading.Lock()


def _expression(text: str):
    compiled = _compiled.get(text)
    if compiled is None:
        with _compile_lock:
            compiled = _compiled.get(text) or zen.compile_unary_expression(text)
            _compiled[text] = compiled
    return compiled


def condition_holds(expression: str, value: Any) -> bool:
    """One decision-table cell against one value. A missing value, or one the cell
    cannot compare (text against a number), does not satisfy it, unless the cell tests for null."""
    if value is None and "null" not in expression:
        return False
    try:
        return bool(_expression(expression).evaluate({"$": value}))
    except RuntimeError:  # zen's type errors ("Opcode Compare: Unsupported type")
        return False


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        value = float(value)
        return None if np.isnan(value) else (int(value) if value.is_integer() else value)
    return value.item() if hasattr(value, "item") else value


def rule_inputs(
    *,
    features: Sequence[Mapping[str, Any]],
    pd: Sequence[float],
    score: Sequence[float],
    history_facts: Mapping[str, Sequence] | None = None,
) -> list[dict]:
    """The inputs rules read, one dict per row: the stored features, PD, points and history facts."""
    facts = history_facts or {}
    rows = []
    for i, row in enumerate(features):
        inputs = {name: _plain(value) for name, value in row.items()}
        inputs["pd"], inputs["score"] = float(pd[i]), float(score[i])
        for name, values in facts.items():
            inputs[name] = _plain(values[i])
        rows.append(inputs)
    return rows


def rules_fired(rules: Sequence[Rule], inputs: Mapping[str, Any]) -> list[Rule]:
    return [rule for rule in rules if all(condition_holds(expr, inputs.get(name)) for name, expr in rule.conditions)]


def combine(cutoff_decision: str, fired: Sequence[Rule]) -> str:
    """The final decision from the cutoffs' decision and the rules that fired (see the module doc)."""
    actions = {rule.action for rule in fired}
    if KNOCKOUT in actions:
        return DECLINE
    if RULE_REFER in actions and cutoff_decision == APPROVE:
        return REFER
    if RULE_APPROVE in actions and RULE_REFER not in actions and cutoff_decision == REFER:
        return APPROVE
    return cutoff_decision


def policy_decide(
    policy: Policy,
    *,
    log_odds: Any,
    features: Sequence[Mapping[str, Any]],
    history_facts: Mapping[str, Any] | None = None,
) -> PolicyOutcome:
    """THE decision: calibrated log-odds of default → PD, points (the policy's scale),
    the cutoffs' decision and the strategy rules' final one, with each fired rule's
    reason code. Pure and deterministic: the same inputs under the same policy give the
    same floats, which is what makes a replay IDENTICAL."""
    log_odds = np.asarray(log_odds, dtype=np.float64)
    pd_ = 1.0 / (1.0 + np.exp(-log_odds))
    points = policy.scale.score(log_odds)
    lo, hi = policy.decline_below_score, policy.approve_min_score
    cutoff = np.where(points >= hi, APPROVE, np.where(points < lo, DECLINE, REFER)).tolist()
    pds, scores = pd_.tolist(), points.tolist()
    if not policy.rules:
        return PolicyOutcome(pds, scores, list(cutoff), cutoff, [[] for _ in cutoff])
    decisions, hits = [], []
    for i, inputs in enumerate(rule_inputs(features=features, pd=pds, score=scores, history_facts=history_facts)):
        fired = rules_fired(policy.rules, inputs)
        decisions.append(combine(cutoff[i], fired))
        hits.append([{"code": r.code, "action": r.action, "text": r.text} for r in fired])
    return PolicyOutcome(pds, scores, decisions, cutoff, hits)


def rules_parse(rules: Any) -> tuple[Rule, ...]:
    """Strategy rules from their stored JSON, checked: raises ``PolicyError`` naming the bad row."""
    if not isinstance(rules, list):
        raise PolicyError("Rules are a list of rows.")
    out, codes = [], set()
    for n, row in enumerate(rules, start=1):
        if not isinstance(row, Mapping):
            raise PolicyError(f"Rule {n} is not an object.")
        code, action, text = str(row.get("code", "")).strip(), row.get("action"), str(row.get("text", "")).strip()
        conditions = row.get("conditions")
        if not code or not text:
            raise PolicyError(f"Rule {n} needs a reason code and a text.")
        if code in codes:
            raise PolicyError(f"Rule {n}: the code {code} is used twice.")
        if action not in RULE_ACTIONS:
            raise PolicyError(f"Rule {n} ({code}): action must be one of {', '.join(RULE_ACTIONS)}.")
        if not isinstance(conditions, Mapping) or not conditions:
            raise PolicyError(f"Rule {n} ({code}) needs at least one condition.")
        pairs = []
        for name, expression in sorted(conditions.items()):
            expression = str(expression).strip()
            try:
                # Compiling is the check: zen's validate_unary_expression rejects plain "< 18" (2.1.3).
                _expression(expression) if expression else zen.compile_unary_expression("<<")
            except RuntimeError:
                raise PolicyError(
                    f"Rule {n} ({code}): the condition on {name} ({expression!r}) does not parse."
                ) from None
            pairs.append((str(name), expression))
        codes.add(code)
        out.append(Rule(code=code, action=action, text=text, conditions=tuple(pairs)))
    return tuple(out)


def policy_rules_jdm(policy: Policy) -> dict:
    """The strategy rules as a GoRules JDM decision graph (hit policy "collect"), the
    document risk staff open in the GoRules editor; evaluated by ``zen.ZenEngine`` it
    returns the same rows ``rules_fired`` does."""
    columns = sorted(policy.inputs)
    inputs = [{"id": f"in{i}", "name": name, "field": name} for i, name in enumerate(columns)]
    outputs = [{"id": f"out{i}", "name": name, "field": name} for i, name in enumerate(("code", "action", "text"))]
    rows = []
    for rule in policy.rules:
        cells = dict(rule.conditions)
        row = {"_id": rule.code, **{f"in{i}": cells.get(name, "") for i, name in enumerate(columns)}}
        row.update({f"out{i}": json.dumps(value) for i, value in enumerate((rule.code, rule.action, rule.text))})
        rows.append(row)
    return {
        "nodes": [
            {"id": "request", "type": "inputNode", "name": "Request", "position": {"x": 0, "y": 0}},
            {"id": "rules", "type": "decisionTableNode", "name": "Strategy rules", "position": {"x": 300, "y": 0},
             "content": {"hitPolicy": "collect", "inputs": inputs, "outputs": outputs, "rules": rows}},
            {"id": "response", "type": "outputNode", "name": "Response", "position": {"x": 600, "y": 0}},
        ],
        "edges": [
            {"id": "e1", "sourceId": "request", "targetId": "rules", "type": "edge"},
            {"id": "e2", "sourceId": "rules", "targetId": "response", "type": "edge"},
        ],
    }  # fmt: skip


# --- Reading versions ----------------------------------------------------------------
_policies: dict[int, Policy] = {}


def policy_from_row(row: PolicyVersion) -> Policy:
    return Policy(
        id=row.pk,
        version=row.version,
        scale=PointsScale(base_score=row.base_score, base_odds=row.base_odds, pdo=row.pdo),
        approve_min_score=row.approve_min_score,
        decline_below_score=row.decline_below_score,
        catalogue=dict(row.reason_catalogue or {}),
        rules=rules_parse(row.rules or []),
    )


def policy_cache_clear() -> None:
    _policies.clear()


def policy_of(policy_version_id: int) -> Policy:
    """The parsed policy of a version, cached per process by id: versions never change
    and are never deleted (PROTECT), so an id always means the same content and the
    cache needs no invalidation (the portfolio row names which id is in force).
    Only a test database, rolled back between tests, reuses ids (tests clear it)."""
    policy = _policies.get(policy_version_id)
    if policy is None:
        policy = _policies[policy_version_id] = policy_from_row(PolicyVersion.objects.get(pk=policy_version_id))
    return policy


def policy_in_force(portfolio: Portfolio) -> Policy:
    """The policy deciding the portfolio's applications now (its first version is made
    from the portfolio's fields on first use)."""
    if portfolio.policy_version_id is None:
        policy_current(portfolio=portfolio)
    assert portfolio.policy_version_id is not None
    return policy_of(portfolio.policy_version_id)


def _content_sha256(content: dict) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _default_catalogue(portfolio: Portfolio) -> dict:
    from scoring.services.reason_codes import reason_catalogue_default

    return reason_catalogue_default(schema=portfolio.schema)


def policy_current(*, portfolio: Portfolio) -> PolicyVersion:
    """The version in force. A portfolio that has none yet (created before policies were
    versioned, or just now) gets version 1 from its own fields, approved by nobody: it is
    the portfolio's starting policy, audited as ``policy.initial``."""
    if portfolio.policy_version_id is None:
        # A cached or stale copy of the row: the database may know the id already.
        portfolio.policy_version_id = Portfolio.objects.filter(pk=portfolio.pk).values_list("policy_version_id", flat=True).first()  # fmt: skip
    if portfolio.policy_version_id is not None:
        return PolicyVersion.objects.get(pk=portfolio.policy_version_id)
    from scoring.audit import audit_record

    with transaction.atomic():
        locked = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
        if locked.policy_version_id is None:
            content = {name: getattr(locked, name) for name in (*SCALE_FIELDS, *CUTOFF_FIELDS)}
            content.update(reason_catalogue=_default_catalogue(locked), rules=[])
            row = PolicyVersion.objects.create(
                portfolio=locked, version=1, status=PolicyVersion.STATUS_APPROVED,
                content_sha256=_content_sha256(content), comment="the portfolio's starting policy",
                decided_at=timezone.now(), **content,
            )  # fmt: skip
            # No cache invalidation: a process holding the row without a policy id finds it
            # here (the read above) on its first decision, and the id never changes but by approval.
            Portfolio.objects.filter(pk=locked.pk).update(policy_version=row)
            locked.policy_version_id = row.pk
            audit_record(
                action="policy.initial", portfolio_id=locked.pk, object_type="policyversion", object_ids=[row.pk],
                details={"version": row.version, "after": _audit_view(row.content())},
            )  # fmt: skip
    portfolio.policy_version_id = locked.policy_version_id
    return PolicyVersion.objects.get(pk=portfolio.policy_version_id)


def _audit_view(content: dict) -> dict:
    """The content as the audit log keeps it: the scale, cutoffs and rules in full, the
    catalogue as its hash (forty texts in every event would bloat the chain)."""
    view = {k: v for k, v in content.items() if k != "reason_catalogue"}
    view["reason_catalogue_sha256"] = _content_sha256(content.get("reason_catalogue") or {})
    return view


def _diff(before: dict, after: dict) -> dict:
    changed = {}
    for key in before:
        if before[key] != after[key]:
            if key == "reason_catalogue":
                keys = sorted(set(before[key]) | set(after[key]))
                changed[key] = {k: {"before": before[key].get(k), "after": after[key].get(k)}
                                for k in keys if before[key].get(k) != after[key].get(k)}  # fmt: skip
            else:
                changed[key] = {"before": before[key], "after": after[key]}
    return changed


# --- Changing them -------------------------------------------------------------------
def _may_manage(user, portfolio: Portfolio) -> bool:
    from scoring.permissions import has_portfolio_perm
    from scoring.roles import POLICY

    return bool(user) and user.is_authenticated and has_portfolio_perm(user, portfolio.pk, POLICY)


def policy_validate(content: dict) -> None:
    """Raise ``PolicyError`` unless the content is a usable policy."""
    try:
        PointsScale(**{k: float(content[k]) for k in SCALE_FIELDS})
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"The points scale is not valid: {exc}") from None
    for name in (*SCALE_FIELDS, *CUTOFF_FIELDS):
        if not np.isfinite(float(content[name])):
            raise PolicyError(f"{name} must be a finite number.")
    if float(content["decline_below_score"]) > float(content["approve_min_score"]):
        raise PolicyError("decline_below_score must not exceed approve_min_score.")
    catalogue = content["reason_catalogue"]
    if not isinstance(catalogue, dict):
        raise PolicyError("The reason catalogue maps reason keys to {code, text}.")
    for key, entry in catalogue.items():
        if (
            not isinstance(entry, dict)
            or not str(entry.get("code", "")).strip()
            or not str(entry.get("text", "")).strip()
        ):
            raise PolicyError(f"Reason {key!r} needs a code and a non-empty text.")
        try:  # a decision fills in {value}: any other placeholder would fail it at scoring time
            str(entry["text"]).format(value="")
        except (KeyError, IndexError, ValueError):
            raise PolicyError(f"Reason {key!r}: the text may use {{value}} and no other placeholder.") from None
    rules_parse(content["rules"])


def policy_propose(
    *, portfolio: Portfolio, user, changes: dict, comment: str = "", admin: bool = False
) -> PolicyVersion:
    """A new version: the one in force with ``changes`` applied (any of the scale, the
    cutoffs, ``rules`` in full, ``reason_catalogue`` entries to replace). It decides
    nothing until a second person approves it. ``admin``: the administrator's console,
    where the right to change portfolios stands in for the policy role to propose."""
    from scoring.audit import audit_record

    allowed = admin and user.has_perm("scoring.change_portfolio")
    if not (allowed or _may_manage(user, portfolio)):
        audit_record(action="policy.propose", actor=user, portfolio_id=portfolio.pk, object_type="portfolio",
                     object_ids=[portfolio.pk], outcome="denied", details={"reason": "no policy role"})  # fmt: skip
        raise PolicyForbidden("Only a holder of the policy role on this portfolio can propose a policy.")
    unknown = set(changes) - set(PolicyVersion.CONTENT_FIELDS)
    if unknown:
        raise PolicyError(f"Unknown policy fields: {', '.join(sorted(unknown))}.")
    current = policy_current(portfolio=portfolio)
    before = current.content()
    after = dict(before)
    for name, value in changes.items():
        if name == "reason_catalogue":
            after[name] = {**before[name], **value}
        elif name == "rules":
            after[name] = list(value)
        else:
            try:
                after[name] = float(value)
            except (TypeError, ValueError):
                raise PolicyError(f"{name} must be a number.") from None
    policy_validate(after)
    diff = _diff(before, after)
    if not diff:
        raise PolicyError("The proposal changes nothing.")
    with transaction.atomic():
        Portfolio.objects.select_for_update().get(pk=portfolio.pk)  # one new version number at a time
        number = (PolicyVersion.objects.filter(portfolio=portfolio).order_by("-version").values_list("version", flat=True).first() or 0) + 1  # fmt: skip
        row = PolicyVersion.objects.create(
            portfolio=portfolio, version=number, based_on=current, proposed_by=user, comment=comment.strip(),
            content_sha256=_content_sha256(after), **after,
        )  # fmt: skip
        audit_record(
            action="policy.propose", actor=user, portfolio_id=portfolio.pk, object_type="policyversion",
            object_ids=[row.pk], details={"version": number, "based_on": current.version, "changes": diff,
                                          "before": _audit_view(before), "after": _audit_view(after)},
        )  # fmt: skip
    return row


def _decide(*, policy_version: PolicyVersion, user, approve: bool, reason: str) -> PolicyVersion:
    from scoring.audit import audit_record

    action = "policy.approve" if approve else "policy.reject"
    event = {"action": action, "actor": user, "portfolio_id": policy_version.portfolio_id,
             "object_type": "policyversion", "object_ids": [policy_version.pk]}  # fmt: skip
    try:
        with transaction.atomic():
            portfolio = Portfolio.objects.select_for_update().get(pk=policy_version.portfolio_id)
            row = PolicyVersion.objects.select_for_update().get(pk=policy_version.pk)
            if not _may_manage(user, portfolio):
                raise PolicyForbidden("Only a holder of the policy role on this portfolio can approve its policy.")
            if row.proposed_by_id is None or row.proposed_by_id == user.pk:
                raise PolicyForbidden("Four eyes: a policy is approved by a second person, never its proposer.")
            if row.status != PolicyVersion.STATUS_PROPOSED:
                raise PolicyConflict(f"Policy v{row.version} is {row.status} already.")
            if approve and row.based_on_id != portfolio.policy_version_id:
                raise PolicyConflict(
                    f"Policy v{row.version} was proposed against a version no longer in force: propose it again."
                )
            # A portfolio always has a policy in force (created with it, never unset).
            in_force = cast(int, portfolio.policy_version_id)
            before = PolicyVersion.objects.get(pk=in_force).content() if approve else {}
            row.status = PolicyVersion.STATUS_APPROVED if approve else PolicyVersion.STATUS_REJECTED
            row.decided_by, row.decided_at, row.decision_reason = user, timezone.now(), reason.strip()
            row.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
            details: dict = {"version": row.version, "proposed_by": row.proposed_by_id, "reason": row.decision_reason}
            if approve:
                # The portfolio's own fields mirror the policy in force (list pages, the API's portfolio view).
                mirror = {name: getattr(row, name) for name in (*SCALE_FIELDS, *CUTOFF_FIELDS)}
                Portfolio.objects.filter(pk=portfolio.pk).update(policy_version=row, **mirror)
                invalidate()  # in this transaction: every process reads the new policy id on its next request
                details.update(before=_audit_view(before), after=_audit_view(row.content()),
                               changes=_diff(before, row.content()))  # fmt: skip
            audit_record(**event, details=details)
    except ServiceError as error:
        audit_record(**event, outcome="denied", details={"reason": error.message[:500]})
        raise
    return row


def policy_approve(*, policy_version: PolicyVersion, user, reason: str = "") -> PolicyVersion:
    """Put a proposed version in force: a second holder of the policy role, never the proposer."""
    return _decide(policy_version=policy_version, user=user, approve=True, reason=reason)


def policy_reject(*, policy_version: PolicyVersion, user, reason: str = "") -> PolicyVersion:
    return _decide(policy_version=policy_version, user=user, approve=False, reason=reason)


def _portfolio_created(sender, instance: Portfolio, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        policy_current(portfolio=instance)


def policy_signals_connect() -> None:
    """Version 1 of a new portfolio's policy is made when the portfolio is, so no
    decision ever creates it lazily (a process's cached portfolio row then always
    names its policy; portfolios older than versioned policies get it on first use)."""
    from django.db.models.signals import post_save

    post_save.connect(_portfolio_created, sender=Portfolio, dispatch_uid="scoring.policy_initial")


# --- Impact of a proposal ---------------------------------------------------------------
def policy_impact(*, policy_version: PolicyVersion) -> dict:
    """What a proposed version would have decided on the stored scores of the portfolio's
    last finished batch run, beside what the version it replaces decided: approval rate,
    refer rate and the observed bad rate of the approved (latest outcomes), old and new.
    Nothing is re-scored: the stored PD and features are the inputs ``policy_decide``
    reads, so this is exactly what the proposal's cutoffs and rules do to those rows."""
    from scoring.models import BatchRun, Outcome, Score

    run = (
        BatchRun.objects.filter(portfolio_id=policy_version.portfolio_id, status=BatchRun.STATUS_DONE)
        .order_by("-finished_at", "-pk")
        .first()
    )
    if run is None:
        return {"run": None, "rows": 0, "old": None, "new": None}
    rows = list(Score.objects.filter(run=run, is_shadow=False).values_list("applicant_id", "pd", "input_features"))
    outcomes = dict(
        Outcome.objects.filter(portfolio_id=policy_version.portfolio_id)
        .order_by("applicant_id", "observed_on")
        .values_list("applicant_id", "defaulted")
    )  # the latest observation of each applicant wins
    pd_ = np.clip(np.array([r[1] for r in rows], dtype=np.float64), 1e-15, 1 - 1e-15)
    log_odds = np.log(pd_) - np.log1p(-pd_)
    features = [r[2] for r in rows]
    bad = np.array([outcomes.get(r[0], np.nan) for r in rows], dtype=np.float64)
    base = (
        policy_version.based_on
        or PolicyVersion.objects.filter(pk=cast(int, policy_version.portfolio.policy_version_id)).first()
    )

    def summary(row: PolicyVersion | None) -> dict | None:
        if row is None:
            return None
        decisions = np.array(policy_decide(policy_from_row(row), log_odds=log_odds, features=features).decision)
        approved = decisions == APPROVE
        observed = approved & np.isfinite(bad)
        return {
            "policy_version": row.version,
            "approval_rate": float(approved.mean()) if len(rows) else 0.0,
            "refer_rate": float((decisions == REFER).mean()) if len(rows) else 0.0,
            "decline_rate": float((decisions == DECLINE).mean()) if len(rows) else 0.0,
            "approved_bad_rate": float(bad[observed].mean()) if observed.any() else None,
            "approved_with_outcome": int(observed.sum()),
        }

    return {"run": run.pk, "rows": len(rows), "old": summary(base), "new": summary(policy_version)}
