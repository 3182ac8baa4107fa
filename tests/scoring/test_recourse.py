"""Recourse ("what would it take"): every suggested change, scored through the real
scoring path, reaches the stated decision; the score's own model and policy version
decide; immutable and protected features never move; no change is said honestly."""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import pytest
from django.test import Client

from scoring.models import Applicant, AuditEvent, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_create, score_chunk_run
from scoring.services.datasets import portfolio_data_of
from scoring.services.policy import policy_approve, policy_in_force, policy_of, policy_propose
from scoring.services.recourse import NO_CHANGE, RecourseError, recourse_specs, score_recourse
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.schemas import SchemaError, schema_register
from scoring.services.scoring import decide_rows, score_whatif
from scoring.services.training import model_version_create, model_version_train
from tests.conftest import flush_database
from tests.factories import DEMO, UserFactory, synthetic_portfolio

FAST = {"max_epochs": 3, "patience": 1, "batch_size": 128}
# The synthetic schema with recourse declared: a region is not a lever, the number of
# credit lines is a fact of the past, years employed only grow.
ACTIONABLE = {"region": False, "num_credit_lines": False, "employment_years": "increase"}


def recourse_schema():
    document = json.loads((DEMO / "synthetic.schema.json").read_text())
    document["name"], document["version"] = "synthetic_recourse", 1
    for column in document["columns"]:
        if column["name"] in ACTIONABLE:
            column["actionable"] = ACTIONABLE[column["name"]]
    return schema_register(document=document)


def run(portfolio, model_version=None):
    batch = batch_run_create(portfolio=portfolio, model_version=model_version, chunk_size=400)
    for chunk_id in batch.chunks.values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    return list(
        Score.objects.filter(run=batch).select_related("model_version__portfolio", "applicant").order_by("applicant_id")
    )


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """A portfolio whose policy has cutoffs from its own score distribution and strategy
    rules (a knock-out on debt to income, business loans referred), an MLP champion and an
    approved CNN, and every applicant scored by each: built once for the module."""
    from scoring.caches import process_cache
    from scoring.services.policy import policy_cache_clear

    # A module before this one flushed the database: ids and the cache version start
    # again, so this process's caches (portfolios, policies by id) must start empty too.
    process_cache.clear()
    policy_cache_clear()
    with django_db_blocker.unblock():
        portfolio = synthetic_portfolio(n=700, seed=23, name="Recourse", schema=recourse_schema())
        developer, validator = UserFactory(username="rc-dev"), UserFactory(username="rc-val")
        alice, bob = UserFactory(username="rc-alice"), UserFactory(username="rc-bob")
        owner, auditor = UserFactory(username="rc-owner"), UserFactory(username="rc-auditor")
        outsider = UserFactory(username="rc-outsider")
        portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
        portfolio_access_grant(portfolio=portfolio, grantee=owner, role="senior analyst")
        portfolio_access_grant(portfolio=portfolio, grantee=auditor, role="auditor")
        for officer in (alice, bob):
            portfolio_access_grant(portfolio=portfolio, grantee=officer, role="credit risk officer")
        versions = {}
        for kind in ("mlp", "cnn"):
            queued = model_version_create(
                portfolio=portfolio, kind=kind, seed=1, hyperparameters=FAST, requested_by=developer
            )
            versions[kind] = model_version_train(model_version_id=queued.pk)
            versions[kind] = model_version_approve(version=versions[kind], user=validator)
        model_version_promote(version=versions["mlp"], user=validator, override_reason="recourse test book")
        first = run(portfolio)
        points = np.array([s.score for s in first])
        dti = np.array([s.input_features["debt_to_income"] for s in first])
        rules = [
            {"code": "KO01", "action": "knockout", "text": "Debt to income above the policy limit",
             "conditions": {"debt_to_income": f"> {np.quantile(dti, 0.85):.4f}"}},
            {"code": "RF01", "action": "refer", "text": "Business loans are reviewed by an underwriter",
             "conditions": {"purpose": '"business"'}},
        ]  # fmt: skip
        changes = {
            "approve_min_score": float(np.quantile(points, 0.55)),
            "decline_below_score": float(np.quantile(points, 0.3)),
            "rules": rules,
        }
        policy_approve(policy_version=policy_propose(portfolio=portfolio, user=alice, changes=changes), user=bob)
        portfolio.refresh_from_db()
        scores = run(portfolio)
        cnn_scores = run(portfolio, model_version=versions["cnn"])
        yield {
            "portfolio": portfolio, "versions": versions, "scores": scores, "cnn_scores": cnn_scores,
            "changes": changes, "alice": alice, "bob": bob, "owner": owner, "auditor": auditor,
            "outsider": outsider,
        }  # fmt: skip
        flush_database()


def declined(scores, n):
    out = [s for s in scores if s.decision == "decline"]
    assert len(out) >= n, f"only {len(out)} declines in the book"
    return out[:n]


def changed_features(suggestion) -> dict:
    return {c["feature"]: c["after"] for c in suggestion["changes"]}


def test_every_suggestion_for_100_declined_applicants_reaches_approve_through_the_real_path(world, db):
    portfolio = world["portfolio"]
    policy = policy_in_force(portfolio)
    actionable = {s.name for s in recourse_specs(world["versions"]["mlp"])}
    assert actionable == {"income", "loan_amount", "duration_months", "debt_to_income", "employment_years",
                          "home_ownership", "purpose"}  # fmt: skip
    started = time.perf_counter()
    checked = feasible = infeasible = knocked_out = 0
    sizes = []
    for score in declined(world["scores"], 100):
        assert score.policy_version_id == policy.id
        recourse = score_recourse(score=score, k=3)
        assert recourse.policy.id == score.policy_version_id and recourse.version.pk == score.model_version_id
        if not recourse.suggestions:
            infeasible += 1
            assert recourse.message == NO_CHANGE and not recourse.result.already
            continue
        feasible += 1
        knocked_out += any(r["code"] == "KO01" for r in score.reasons)
        for suggestion in recourse.suggestions:
            changes = changed_features(suggestion)
            assert set(changes) <= actionable, changes  # protected and immutable features never move
            assert 1 <= len(changes) <= 3
            employment = changes.get("employment_years")
            if employment is not None and score.input_features["employment_years"] is not None:
                assert employment > score.input_features["employment_years"]  # "increase" only
            # THE check: the what-if panel's scoring path (validation, champion, policy, rules).
            answer = score_whatif(portfolio=portfolio, applicant=score.applicant, features=changes)
            assert answer.version.pk == score.model_version_id
            assert answer.row.decision == suggestion["decision"] == "approve", (changes, answer.row)
            assert answer.row.score == pytest.approx(suggestion["score"], abs=1e-6)
            checked += 1
            sizes.append(len(changes))
    elapsed = time.perf_counter() - started
    print(
        f"\nrecourse: 100 declined, {feasible} with suggestions ({checked} suggestions checked, "
        f"{np.mean(sizes):.2f} features changed on average, {knocked_out} knocked out by KO01), "
        f"{infeasible} 'no change within bounds'; {elapsed:.1f} s"
    )
    assert feasible >= 50 and checked >= feasible


def test_a_knocked_out_applicant_is_told_to_clear_the_rule(world, db):
    limit = float(world["changes"]["rules"][0]["conditions"]["debt_to_income"].split()[1])
    knocked = [s for s in world["scores"] if any(r["code"] == "KO01" for r in s.reasons)]
    assert knocked
    for score in knocked[:10]:
        for suggestion in score_recourse(score=score).suggestions:
            assert changed_features(suggestion).get("debt_to_income", limit + 1) <= limit


def test_a_business_loan_is_approved_only_by_changing_its_purpose(world, db):
    business = [s for s in world["scores"] if s.input_features["purpose"] == "business" and s.decision == "refer"]
    assert business
    for score in business[:5]:
        for suggestion in score_recourse(score=score).suggestions:
            assert changed_features(suggestion).get("purpose", "business") != "business"


def test_a_cnn_applicant_keeps_the_history_it_was_scored_with(world, db):
    portfolio, cnn = world["portfolio"], world["versions"]["cnn"]
    policy = policy_in_force(portfolio)
    checked = 0
    for score in declined(world["cnn_scores"], 15):
        recourse = score_recourse(score=score)
        assert recourse.version.pk == cnn.pk
        applicant = score.applicant
        for suggestion in recourse.suggestions:
            features = {**applicant.features, **changed_features(suggestion)}
            # The path score_whatif takes for a stored applicant, with the CNN instead of the champion.
            data = portfolio_data_of(portfolio=portfolio, records=[(applicant.pk, applicant.external_id, features)],
                                     with_history=True)  # fmt: skip
            _, (row,) = decide_rows(version=cnn, data=data, policy=policy)
            assert row.decision == suggestion["decision"] == "approve"
            checked += 1
    assert checked


def test_an_approved_score_needs_no_change(world, db):
    score = next(s for s in world["scores"] if s.decision == "approve")
    recourse = score_recourse(score=score)
    assert recourse.result.already and recourse.suggestions == []
    assert recourse.message.startswith("Already approve")


def test_actionable_on_a_protected_column_is_refused(db):
    document = json.loads((DEMO / "synthetic.schema.json").read_text())
    document["name"] = "synthetic_bad_recourse"
    for column in document["columns"]:
        if column["name"] == "sex":
            column["actionable"] = True
    with pytest.raises(SchemaError, match="never actionable"):
        schema_register(document=copy.deepcopy(document))


def test_the_api_answers_recourse_behind_the_explanation_gate(world, db):
    from scoring.services.tokens import api_token_create

    score = declined(world["scores"], 1)[0]
    answers = {}
    for name in ("owner", "auditor", "outsider"):
        _, key = api_token_create(user=world[name], name="rc")
        client = Client(HTTP_AUTHORIZATION=f"Token {key}")
        answers[name] = client.get(f"/api/v1/scores/{score.pk}/recourse/?k=2")
    body = answers["owner"].json()
    assert answers["owner"].status_code == 200 and answers["auditor"].status_code == 200
    assert answers["outsider"].status_code == 404
    assert body["score"] == score.pk and body["decision"] == "decline" and body["target"] == "approve"
    assert body["policy_version"] == score.policy_version_id and body["model_version"] == score.model_version_id
    assert len(body["suggestions"]) <= 2 and "sex" not in body["immutable"]
    assert {"region", "num_credit_lines"} <= set(body["immutable"])
    for suggestion in body["suggestions"]:
        assert suggestion["decision"] == "approve" and suggestion["changes"][0]["label"]
    events = AuditEvent.objects.filter(action="applicant.recourse", object_type="score")
    assert [e.object_ids for e in events] == [[score.pk], [score.pk]]  # the owner's and the auditor's


def test_the_what_if_panel_shows_the_smallest_changes(world, db):
    score = declined(world["scores"], 1)[0]
    client = Client()
    client.force_login(world["owner"])
    page = client.get(f"/applicants/{score.applicant_id}/?recourse=1")
    assert page.status_code == 200
    text = page.content.decode()
    assert "What would it take?" in text
    assert ("reach approve under the policy" in text and "&rarr;" in text) or (NO_CHANGE in text)
    assert "Never changed: Num credit lines, Region, and protected attributes" in text
    assert AuditEvent.objects.filter(action="applicant.recourse").exists()


def test_a_score_keeps_its_policy_for_recourse_after_a_policy_change(world, db):
    """Last in the module: it puts a stricter policy in force, then the old one back."""
    portfolio = world["portfolio"]
    score = declined(world["scores"], 1)[0]
    before = score_recourse(score=score)
    decided_under = policy_of(score.policy_version_id)
    stricter = {"approve_min_score": world["changes"]["approve_min_score"] + 60}
    policy_approve(policy_version=policy_propose(portfolio=portfolio, user=world["alice"], changes=stricter),
                   user=world["bob"])  # fmt: skip
    portfolio.refresh_from_db()
    assert policy_in_force(portfolio).id != decided_under.id
    after = score_recourse(score=score)
    assert after.policy.id == decided_under.id
    assert after.suggestions == before.suggestions  # the same search under the same policy
    for suggestion in after.suggestions:
        assert suggestion["score"] >= decided_under.approve_min_score
    back = {"approve_min_score": world["changes"]["approve_min_score"]}
    policy_approve(policy_version=policy_propose(portfolio=portfolio, user=world["alice"], changes=back),
                   user=world["bob"])  # fmt: skip


def test_a_shadow_score_is_not_a_decision(world, db):
    score = declined(world["scores"], 1)[0]
    shadow = Score.objects.get(pk=score.pk)
    shadow.is_shadow = True
    with pytest.raises(RecourseError):
        score_recourse(score=shadow)


def test_applicant_model_is_untouched(world, db):
    score = declined(world["scores"], 1)[0]
    features = dict(Applicant.objects.get(pk=score.applicant_id).features)
    score_recourse(score=score)
    assert Applicant.objects.get(pk=score.applicant_id).features == features
