"""Credit policy under change control: propose → approve by a second person → audited;
scores name the policy version they were decided under and replay under it."""

import pytest
from django.core.management import call_command

from scoring.models import AuditEvent, PolicyVersion, Portfolio, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.explanations import score_explanation
from scoring.services.policy import (
    PolicyConflict,
    PolicyError,
    PolicyForbidden,
    policy_approve,
    policy_current,
    policy_propose,
    policy_reject,
)
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.replay import replay_many
from scoring.services.scoring import score_realtime
from scoring.services.training import model_version_create, model_version_train
from tests.factories import PortfolioFactory, UserFactory, synthetic_portfolio

FAST = {"max_epochs": 4, "patience": 2, "batch_size": 128}


@pytest.fixture
def officers(db):
    portfolio = PortfolioFactory(name="policy book")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    for officer in (alice, bob):
        portfolio_access_grant(portfolio=portfolio, grantee=officer, role="credit risk officer")
    return portfolio, alice, bob


def test_a_cutoff_change_without_a_second_approver_is_refused(officers):
    portfolio, alice, _bob = officers
    first = policy_current(portfolio=portfolio)
    proposal = policy_propose(portfolio=portfolio, user=alice, changes={"approve_min_score": 575}, comment="tighter")
    assert proposal.status == PolicyVersion.STATUS_PROPOSED and proposal.version == first.version + 1
    with pytest.raises(PolicyForbidden, match="Four eyes"):
        policy_approve(policy_version=proposal, user=alice)
    validator = UserFactory(username="validator")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    with pytest.raises(PolicyForbidden, match="policy role"):
        policy_approve(policy_version=proposal, user=validator)
    portfolio.refresh_from_db()
    assert portfolio.policy_version_id == first.pk and portfolio.approve_min_score == 560.0
    denied = AuditEvent.objects.filter(action="policy.approve", outcome="denied")
    assert denied.count() == 2 and {e.actor_username for e in denied} == {"alice", "validator"}


def test_an_approved_change_is_audited_with_before_and_after_and_the_chain_verifies(officers, append_only, capsys):
    portfolio, alice, bob = officers
    proposal = policy_propose(portfolio=portfolio, user=alice, changes={"approve_min_score": 575, "pdo": 25})
    policy_approve(policy_version=proposal, user=bob, reason="agreed in credit committee")
    portfolio.refresh_from_db()
    assert portfolio.policy_version_id == proposal.pk
    assert (portfolio.approve_min_score, portfolio.pdo) == (575.0, 25.0)  # the mirror of the policy in force
    event = AuditEvent.objects.get(action="policy.approve", outcome="success")
    assert event.actor_username == "bob" and event.object_ids == [proposal.pk]
    assert event.details["changes"]["approve_min_score"] == {"before": 560, "after": 575}
    assert event.details["before"]["pdo"] == 20 and event.details["after"]["pdo"] == 25
    assert AuditEvent.objects.filter(action="policy.propose", actor_username="alice").exists()
    call_command("verify_audit_log", "--no-checkpoint")
    assert "BROKEN" not in capsys.readouterr().out
    with pytest.raises(PolicyConflict):  # decided once
        policy_reject(policy_version=proposal, user=bob)


def test_a_version_is_immutable_and_a_stale_proposal_cannot_be_approved(officers):
    portfolio, alice, bob = officers
    one = policy_propose(portfolio=portfolio, user=alice, changes={"approve_min_score": 570})
    two = policy_propose(portfolio=portfolio, user=bob, changes={"decline_below_score": 520})
    policy_approve(policy_version=one, user=bob)
    with pytest.raises(PolicyConflict, match="no longer in force"):
        policy_approve(policy_version=two, user=alice)
    one.approve_min_score = 400
    with pytest.raises(ValueError, match="immutable"):
        one.save()
    with pytest.raises(PolicyError, match="must not exceed"):
        policy_propose(portfolio=portfolio, user=alice, changes={"decline_below_score": 600})
    with pytest.raises(PolicyForbidden):
        policy_propose(portfolio=portfolio, user=UserFactory(username="outsider"), changes={"pdo": 30})


def test_the_admin_proposes_a_cutoff_change_instead_of_applying_it(officers, client):
    portfolio, alice, _bob = officers
    policy_current(portfolio=portfolio)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    url = f"/admin/scoring/portfolio/{portfolio.pk}/change/"
    form = {"name": portfolio.name, "description": "", "schema": portfolio.schema_id, "is_active": "on",
            "base_score": 600, "base_odds": 50, "pdo": 20, "approve_min_score": 590, "decline_below_score": 530}  # fmt: skip
    assert client.post(url, form).status_code == 302
    portfolio.refresh_from_db()
    assert portfolio.approve_min_score == 560.0  # unchanged until approved
    proposal = PolicyVersion.objects.get(portfolio=portfolio, status=PolicyVersion.STATUS_PROPOSED)
    assert proposal.approve_min_score == 590.0 and proposal.proposed_by == root
    policy_approve(policy_version=proposal, user=alice)
    assert Portfolio.objects.get(pk=portfolio.pk).approve_min_score == 590.0


@pytest.fixture
def scored_book(db):
    portfolio = synthetic_portfolio(n=600, seed=5)
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
    return portfolio, alice, bob


def test_a_score_decided_before_a_cutoff_change_replays_identical_under_its_policy(scored_book, capsys):
    portfolio, alice, bob = scored_book
    applicant = portfolio.applicants.order_by("id").first()
    before = score_realtime(portfolio=portfolio, applicant=applicant)
    v1 = policy_current(portfolio=portfolio)
    assert before.policy_version_id == v1.pk
    # Cutoffs that flip this applicant's decision.
    flip = {"approve_min_score": before.score - 1, "decline_below_score": before.score - 2}
    if before.decision == "approve":
        flip = {"approve_min_score": before.score + 2, "decline_below_score": before.score + 1}
    proposal = policy_propose(portfolio=portfolio, user=alice, changes=flip)
    policy_approve(policy_version=proposal, user=bob)
    portfolio.refresh_from_db()

    after = score_realtime(portfolio=portfolio, applicant=applicant)
    assert after.policy_version_id == proposal.pk and after.decision != before.decision
    (replay,) = replay_many([Score.objects.select_related("model_version__portfolio").get(pk=before.pk)])
    assert replay.identical, replay.differences()
    assert replay.decision == before.decision and f"policy v{v1.version}" in replay.policy_note
    call_command("replay_score", str(before.pk), str(after.pk))
    out = capsys.readouterr().out
    assert out.count("IDENTICAL") == 2 and f"under policy v{v1.version}" in out and f"policy v{proposal.version}" in out
    explained = score_explanation(score=before)
    assert explained["policy_version"]["version"] == v1.version
    assert explained["base_points"] + sum(c["points"] for c in explained["contributions"]) == pytest.approx(
        before.score, abs=1e-2
    )


def test_the_impact_of_a_proposal_is_measured_on_the_last_runs_stored_scores(scored_book):
    from scoring.services.batch import batch_run_create, score_chunk_run
    from scoring.services.policy import policy_impact

    portfolio, alice, _bob = scored_book
    run = batch_run_create(portfolio=portfolio, chunk_size=600)
    for chunk_id in run.chunks.values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    stored = list(Score.objects.filter(run=run))
    tighter = policy_propose(
        portfolio=portfolio, user=alice, changes={"approve_min_score": 600, "decline_below_score": 580}
    )
    impact = policy_impact(policy_version=tighter)
    assert impact["run"] == run.pk and impact["rows"] == len(stored) == 600
    old, new = impact["old"], impact["new"]
    assert old["approval_rate"] == pytest.approx(sum(s.decision == "approve" for s in stored) / 600)
    assert new["approval_rate"] == pytest.approx(sum(s.score >= 600 for s in stored) / 600, abs=1 / 600)
    assert new["approval_rate"] <= old["approval_rate"] and new["approved_bad_rate"] is not None
