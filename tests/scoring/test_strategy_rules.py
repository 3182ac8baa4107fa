"""Strategy rules (knock-out, refer, approve) versioned with the policy: one decision in
real time, batch, what-if and replay; the same hits as GoRules' own decision-table engine."""

import json

import numpy as np
import pytest
import zen

from scoring.models import Score
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_create, score_chunk_run
from scoring.services.policy import (
    KNOCKOUT,
    RULE_APPROVE,
    RULE_REFER,
    PolicyError,
    Rule,
    combine,
    condition_holds,
    policy_approve,
    policy_in_force,
    policy_propose,
    policy_rules_jdm,
    rule_inputs,
    rules_fired,
)
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.replay import replay_many
from scoring.services.scoring import score_realtime, score_whatif
from scoring.services.training import model_version_create, model_version_train
from tests.factories import PortfolioFactory, UserFactory, synthetic_portfolio

FAST = {"max_epochs": 4, "patience": 2, "batch_size": 128}


def rule(action, code="X1"):
    return Rule(code=code, action=action, text="t", conditions=(("pd", "> 0"),))


@pytest.mark.parametrize(
    ("cutoff", "actions", "expected"),
    [
        ("approve", [], "approve"),
        ("approve", [KNOCKOUT], "decline"),
        ("refer", [KNOCKOUT, RULE_APPROVE], "decline"),  # a knock-out beats everything
        ("approve", [RULE_REFER], "refer"),
        ("decline", [RULE_REFER], "decline"),  # a refer rule never lifts a decline
        ("refer", [RULE_APPROVE], "approve"),
        ("decline", [RULE_APPROVE], "decline"),  # nor does an approve rule
        ("refer", [RULE_APPROVE, RULE_REFER], "refer"),
    ],
)
def test_rule_precedence(cutoff, actions, expected):
    assert combine(cutoff, [rule(a, f"C{i}") for i, a in enumerate(actions)]) == expected


def test_a_condition_on_a_missing_or_mistyped_value_holds_only_when_it_tests_for_null():
    assert condition_holds("< 18", 17) and not condition_holds("< 18", 30)
    assert not condition_holds("< 18", None) and condition_holds("null", None)
    assert not condition_holds("< 18", "seventeen")  # zen's type error: the cell does not hold
    assert condition_holds('"A14", "A13"', "A13") and condition_holds("[18..65]", 30)


@pytest.mark.django_db
def test_a_rule_that_does_not_parse_or_lacks_a_reason_is_refused():
    portfolio = PortfolioFactory()
    officer = UserFactory(username="alice")
    portfolio_access_grant(portfolio=portfolio, grantee=officer, role="credit risk officer")
    bad = [
        [{"code": "K1", "action": "knockout", "text": "x", "conditions": {"income": "<<< 3"}}],
        [{"code": "K1", "action": "knockout", "text": "", "conditions": {"income": "< 3"}}],
        [{"code": "K1", "action": "ban", "text": "x", "conditions": {"income": "< 3"}}],
        [{"code": "K1", "action": "refer", "text": "x", "conditions": {}}],
    ]
    for rules in bad:
        with pytest.raises(PolicyError):
            policy_propose(portfolio=portfolio, user=officer, changes={"rules": rules})


@pytest.fixture
def ruled_book(db):
    portfolio = synthetic_portfolio(n=600, seed=21)
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    for officer in (alice, bob):
        portfolio_access_grant(portfolio=portfolio, grantee=officer, role="credit risk officer")
    version = model_version_create(
        portfolio=portfolio, kind="mlp", seed=1, hyperparameters=FAST, requested_by=developer
    )
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator, override_reason="test book")
    # Cutoffs and thresholds from this book's own distribution, so every rule and every band is hit.
    first = run(portfolio)
    scores = np.array([s.score for s in first])
    dti = np.array([s.input_features["debt_to_income"] for s in first])
    income = np.array([s.input_features["income"] for s in first])
    loan = np.array([s.input_features["loan_amount"] for s in first])
    rules = [
        {"code": "KO01", "action": "knockout", "text": "Debt to income above the policy limit",
         "conditions": {"debt_to_income": f"> {np.quantile(dti, 0.9):.4f}"}},
        {"code": "KO02", "action": "knockout", "text": "Renting, with a loan above the policy limit",
         "conditions": {"home_ownership": '"rent"', "loan_amount": f"> {np.quantile(loan, 0.8):.2f}"}},
        {"code": "RF01", "action": "refer", "text": "Business loans are reviewed by an underwriter",
         "conditions": {"purpose": '"business"'}},
        {"code": "AP01", "action": "approve", "text": "High income with a modest loan",
         "conditions": {"income": f"> {np.quantile(income, 0.6):.2f}", "pd": "< 0.5"}},
    ]  # fmt: skip
    changes = {
        "approve_min_score": float(np.quantile(scores, 0.6)),
        "decline_below_score": float(np.quantile(scores, 0.3)),
        "rules": rules,
    }
    policy_approve(policy_version=policy_propose(portfolio=portfolio, user=alice, changes=changes), user=bob)
    portfolio.refresh_from_db()
    return portfolio


def run(portfolio):
    batch = batch_run_create(portfolio=portfolio, chunk_size=300)
    for chunk_id in batch.chunks.values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    return list(Score.objects.filter(run=batch).select_related("model_version__portfolio").order_by("applicant_id"))


def test_the_rule_table_decides_identically_in_real_time_batch_what_if_and_replay(ruled_book):
    portfolio = ruled_book
    policy = policy_in_force(portfolio)
    batch = run(portfolio)
    assert {s.policy_version_id for s in batch} == {policy.id}
    fired_codes = {r["code"] for s in batch for r in s.reasons if r["feature"].startswith("rule:")}
    assert fired_codes == {"KO01", "KO02", "RF01", "AP01"}
    # The table's own semantics, row by row.
    inputs = rule_inputs(features=[s.input_features for s in batch], pd=[s.pd for s in batch],
                         score=[s.score for s in batch])  # fmt: skip
    paths = set()
    for s, row in zip(batch, inputs, strict=True):
        cutoff = (
            "approve"
            if s.score >= policy.approve_min_score
            else "decline"
            if s.score < policy.decline_below_score
            else "refer"
        )
        fired = rules_fired(policy.rules, row)
        assert s.decision == combine(cutoff, fired)
        paths.add((cutoff, s.decision))
    # A knock-out overrode an approve, a refer rule held an approve, an approve rule lifted a refer.
    assert {("approve", "decline"), ("approve", "refer"), ("refer", "approve")} <= paths

    # Every path gives the batch's decision: a sample with every rule and band.
    sample = [s for s in batch if any(r["feature"].startswith("rule:") for r in s.reasons)][:25] + batch[:15]
    replays = {r.score.pk: r for r in replay_many(sample)}
    for stored in sample:
        applicant = stored.applicant
        realtime = score_realtime(portfolio=portfolio, applicant=applicant)
        whatif = score_whatif(portfolio=portfolio, features={}, applicant=applicant).row
        replay = replays[stored.pk]
        assert replay.identical, replay.differences()
        assert realtime.decision == whatif.decision == replay.decision == stored.decision
        assert realtime.reasons == stored.reasons and whatif.reasons == stored.reasons

    # GoRules' decision-table engine, given the exported JDM document, fires the same rows.
    decision = zen.ZenEngine().create_decision(json.dumps(policy_rules_jdm(policy)))
    for row in inputs:
        evaluated = decision.evaluate(row)["result"]
        assert sorted(r["code"] for r in evaluated) == sorted(r.code for r in rules_fired(policy.rules, row))
