"""The credit policy over the API and in the admin: propose, approve by a second officer,
reject, four eyes refused (403, audited as denied), a rule that does not parse (400)."""

import pytest

from scoring.models import AuditEvent, PolicyVersion, Portfolio
from scoring.services.access import portfolio_access_grant
from scoring.services.policy import policy_propose
from tests.factories import PortfolioFactory, UserFactory
from tests.scoring.api.conftest import client_for

KO = {"code": "KO01", "action": "knockout", "text": "Debt to income above the policy limit",
      "conditions": {"debt_to_income": "> 0.6"}}  # fmt: skip


@pytest.fixture
def book(db):
    portfolio = PortfolioFactory(name="policy api book")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    analyst = UserFactory(username="ann")
    for officer in (alice, bob):
        portfolio_access_grant(portfolio=portfolio, grantee=officer, role="credit risk officer")
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    return portfolio, alice, bob, analyst


def test_propose_then_a_second_officer_approves_and_it_is_in_force(book):
    portfolio, alice, bob, _ = book
    answer = client_for(alice).post(
        f"/api/v1/portfolios/{portfolio.pk}/policies/",
        {"approve_min_score": 575, "rules": [KO], "comment": "tighter"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    proposal = answer.json()
    assert (proposal["state"], proposal["version"], proposal["proposed_by"]) == ("proposed", 2, "alice")
    assert proposal["changes"]["approve_min_score"] == {"before": 560.0, "after": 575.0}
    assert proposal["rules"][0]["code"] == "KO01" and not proposal["in_force"]

    own = client_for(alice).post(f"/api/v1/policies/{proposal['id']}/approve/", {"reason": "mine"}, format="json")
    assert own.status_code == 403 and own.json()["error"]["code"] == "policy_forbidden"
    assert AuditEvent.objects.filter(action="policy.approve", outcome="denied", actor_username="alice").exists()

    ok = client_for(bob).post(f"/api/v1/policies/{proposal['id']}/approve/", {"reason": "committee"}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["state"] == "approved" and ok.json()["in_force"] and ok.json()["decided_by"] == "bob"
    portfolio.refresh_from_db()
    assert portfolio.policy_version_id == proposal["id"] and portfolio.approve_min_score == 575.0
    event = AuditEvent.objects.get(action="policy.approve", outcome="success")
    assert event.details["reason"] == "committee" and event.actor_username == "bob"

    again = client_for(bob).post(f"/api/v1/policies/{proposal['id']}/reject/", {"reason": "late"}, format="json")
    assert again.status_code == 409
    versions = client_for(bob).get(f"/api/v1/portfolios/{portfolio.pk}/policies/").json()["results"]
    assert [(v["version"], v["state"]) for v in versions] == [(2, "approved"), (1, "superseded")]


def test_reject_needs_a_reason_and_the_policy_grant(book):
    portfolio, alice, bob, analyst = book
    proposal = policy_propose(portfolio=portfolio, user=alice, changes={"pdo": 25})
    url = f"/api/v1/policies/{proposal.pk}/reject/"
    assert client_for(bob).post(url, {}, format="json").status_code == 400  # no reason
    assert client_for(analyst).post(url, {"reason": "no"}, format="json").status_code == 403
    assert client_for(analyst).get(f"/api/v1/policies/{proposal.pk}/").status_code == 200  # the view grant reads
    assert client_for(UserFactory()).get(f"/api/v1/policies/{proposal.pk}/").status_code == 404
    answer = client_for(bob).post(url, {"reason": "not now"}, format="json")
    assert answer.status_code == 200 and answer.json()["state"] == "rejected"
    assert Portfolio.objects.get(pk=portfolio.pk).pdo == 20.0
    assert client_for(analyst).post(f"/api/v1/portfolios/{portfolio.pk}/policies/", {"pdo": 30},
                                    format="json").status_code == 403  # fmt: skip


def test_a_rule_that_does_not_parse_or_reads_an_unknown_input_is_a_400_naming_it(book):
    portfolio, alice, _, _ = book
    url = f"/api/v1/portfolios/{portfolio.pk}/policies/"
    bad = client_for(alice).post(url, {"rules": [{**KO, "conditions": {"debt_to_income": ">> 0.6"}}]}, format="json")
    assert bad.status_code == 400 and "does not parse" in bad.json()["error"]["message"]
    typo = client_for(alice).post(url, {"rules": [{**KO, "conditions": {"debt_to_incme": "> 0.6"}}]}, format="json")
    assert typo.status_code == 400 and "debt_to_incme is not a feature" in typo.json()["error"]["message"]
    assert not PolicyVersion.objects.filter(portfolio=portfolio, status="proposed").exists()


def test_the_impact_of_a_proposal_without_a_finished_run_says_so(book):
    portfolio, alice, bob, _ = book
    proposal = policy_propose(portfolio=portfolio, user=alice, changes={"pdo": 25})
    answer = client_for(bob).get(f"/api/v1/policies/{proposal.pk}/impact/")
    assert answer.status_code == 200 and answer.json()["run"] is None


def test_the_admin_approves_with_a_reason_from_an_intermediate_form_and_refuses_the_proposer(book, client):
    portfolio, alice, bob, _ = book
    for officer in (alice, bob):
        officer.is_staff = True
        officer.save()
    proposal = policy_propose(portfolio=portfolio, user=alice, changes={"approve_min_score": 580})
    url = "/admin/scoring/policyversion/"
    selected = {"action": "approve", "_selected_action": [proposal.pk]}

    client.force_login(alice)
    ask = client.post(url, selected)
    assert ask.status_code == 200 and b"Confirm: approved" in ask.content  # the reason is asked first
    refused = client.post(url, {**selected, "confirm": "yes", "reason": "mine"}, follow=True)
    assert b"Four eyes" in refused.content
    assert PolicyVersion.objects.get(pk=proposal.pk).status == "proposed"

    client.force_login(bob)
    assert client.post(url, {**selected, "confirm": "yes", "reason": ""}).status_code == 200  # a reason is required
    assert PolicyVersion.objects.get(pk=proposal.pk).status == "proposed"
    done = client.post(url, {**selected, "confirm": "yes", "reason": "agreed in committee"}, follow=True)
    assert b"approved" in done.content
    row = PolicyVersion.objects.get(pk=proposal.pk)
    assert (row.status, row.decided_by, row.decision_reason) == ("approved", bob, "agreed in committee")
    assert Portfolio.objects.get(pk=portfolio.pk).approve_min_score == 580.0


@pytest.mark.parametrize(
    "body",
    [
        {"base_odds": 0},
        {"base_odds": -1},
        {"pdo": 0},
        {"approve_min_score": "nan"},
        {"rules": "not a table"},
        {"rules": [{"code": "A1"}]},
        {"rules": [{**KO, "conditions": {"pd": ""}}]},
        {"rules": [{**KO, "conditions": {}}]},
        {"rules": [KO, KO]},
        {"reason_catalogue": {"R1": {}}},
        {"reason_catalogue": {"R1": {"code": "R1", "text": "{oops}"}}},
        {"reason_catalogue": "x"},
        {"comment": "nothing changes"},
    ],
)
def test_a_proposal_that_is_not_a_policy_is_a_400_never_a_500(book, body):
    portfolio, alice, _, _ = book
    answer = client_for(alice).post(f"/api/v1/portfolios/{portfolio.pk}/policies/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert not PolicyVersion.objects.filter(portfolio=portfolio, status="proposed").exists()
