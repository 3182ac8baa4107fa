"""The portal's policy pages: the policy in force and its versions, proposing a change
with the strategy rules as a decision table, approving by a second officer (four eyes
refused as an error, not a 500), and a knock-out added in the table deciding a real-time
score through the API."""

import re

import pytest
from rest_framework.test import APIClient

from scoring.models import AuditEvent, PolicyVersion, Portfolio
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_create, score_chunk_run
from scoring.services.policy import policy_impact
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.training import model_version_create, model_version_train
from tests.factories import PortfolioFactory, UserFactory, synthetic_portfolio

FAST = {"max_epochs": 3, "patience": 2, "batch_size": 128}


def proposal_form(rows, *, approve_min_score=560, decline_below_score=530, comment="via the portal", slots=3, **extra):
    """The propose page's POST: the scale and cutoffs, and the decision table's rows
    (action, code, text, [(input, expression), ...])."""
    data = {"base_score": 600, "base_odds": 50, "pdo": 20, "approve_min_score": approve_min_score,
            "decline_below_score": decline_below_score, "comment": comment, "condition_slots": slots,
            "rules-TOTAL_FORMS": len(rows), "rules-INITIAL_FORMS": 0, "rules-MIN_NUM_FORMS": 0,
            "rules-MAX_NUM_FORMS": 1000, **extra}  # fmt: skip
    for n, (action, code, text, conditions) in enumerate(rows):
        data.update({f"rules-{n}-action": action, f"rules-{n}-code": code, f"rules-{n}-text": text})
        for i, (name, expression) in enumerate(conditions):
            data.update({f"rules-{n}-input_{i}": name, f"rules-{n}-expression_{i}": expression})
    return data


@pytest.fixture
def officers(db):
    portfolio = PortfolioFactory(name="portal policy book")
    alice, bob, ann = UserFactory(username="alice"), UserFactory(username="bob"), UserFactory(username="ann")
    for officer in (alice, bob):
        portfolio_access_grant(portfolio=portfolio, grantee=officer, role="credit risk officer")
    portfolio_access_grant(portfolio=portfolio, grantee=ann, role="analyst")
    return portfolio, alice, bob, ann


def test_a_proposal_made_in_the_portal_is_in_force_once_a_second_officer_approves_it(officers, client):
    portfolio, alice, bob, _ = officers
    client.force_login(alice)
    assert client.get(f"/policy/{portfolio.pk}/propose/").status_code == 200
    rows = [("knockout", "KO01", "Debt to income above the policy limit", [("debt_to_income", "> 0.6")]),
            ("refer", "RF01", "Business loans are reviewed", [("purpose", '"business"'), ("score", "< 600")])]  # fmt: skip
    answer = client.post(f"/policy/{portfolio.pk}/propose/", proposal_form(rows, approve_min_score=575))
    assert answer.status_code == 302, answer.content.decode()[:2000]
    proposal = PolicyVersion.objects.get(portfolio=portfolio, status="proposed")
    assert answer["Location"] == f"/policy/versions/{proposal.pk}/"
    assert proposal.approve_min_score == 575 and proposal.proposed_by == alice and proposal.comment == "via the portal"
    assert proposal.rules == [
        {"code": "KO01", "action": "knockout", "text": "Debt to income above the policy limit",
         "conditions": {"debt_to_income": "> 0.6"}},
        {"code": "RF01", "action": "refer", "text": "Business loans are reviewed",
         "conditions": {"purpose": '"business"', "score": "< 600"}},
    ]  # fmt: skip

    client.force_login(bob)
    page = client.get(f"/policy/versions/{proposal.pk}/").content.decode()
    assert "Approve: put it in force" in page and "approve_min_score" in page and "KO01" in page
    assert "No finished batch run" in page  # the impact section, with nothing to measure on yet
    done = client.post(f"/policy/versions/{proposal.pk}/decide/", {"decision": "approve", "reason": "committee"},
                       follow=True)  # fmt: skip
    assert "approved: it is in force now" in done.content.decode()
    portfolio.refresh_from_db()
    assert portfolio.policy_version_id == proposal.pk and portfolio.approve_min_score == 575
    listing = client.get(f"/policy/?portfolio={portfolio.pk}").content.decode()
    assert "In force: policy v2" in listing and "superseded" in listing and "Debt to income above" in listing


def test_the_proposer_cannot_approve_and_is_told_so_and_audited_as_denied(officers, client):
    portfolio, alice, _, _ = officers
    client.force_login(alice)
    client.post(f"/policy/{portfolio.pk}/propose/", proposal_form([], approve_min_score=570))
    proposal = PolicyVersion.objects.get(portfolio=portfolio, status="proposed")
    answer = client.post(f"/policy/versions/{proposal.pk}/decide/", {"decision": "approve", "reason": "mine"},
                         follow=True)  # fmt: skip
    assert answer.status_code == 200 and "Four eyes" in answer.content.decode()
    assert PolicyVersion.objects.get(pk=proposal.pk).status == "proposed"
    assert AuditEvent.objects.filter(action="policy.approve", outcome="denied", actor_username="alice").exists()
    # Without a reason nothing is decided (and the service is not asked).
    client.post(f"/policy/versions/{proposal.pk}/decide/", {"decision": "reject", "reason": " "})
    assert PolicyVersion.objects.get(pk=proposal.pk).status == "proposed"


def test_a_bad_row_is_shown_beside_it_and_rows_are_added_and_removed(officers, client):
    portfolio, alice, _, _ = officers
    client.force_login(alice)
    url = f"/policy/{portfolio.pk}/propose/"
    bad = proposal_form([("knockout", "KO01", "ok", [("income", "< 1000")]),
                         ("refer", "RF01", "bad", [("income", ">> 3")])])  # fmt: skip
    answer = client.post(url, bad)
    page = answer.content.decode()
    assert answer.status_code == 400 and 'role="alert">Row 2:' in page and 'role="alert">Row 1:' not in page
    assert "This rule (RF01): the condition on income" in page and "does not parse" in page
    half = client.post(url, proposal_form([("refer", "RF01", "half", [("income", "")])]))
    assert "needs both an input and an expression" in half.content.decode()
    twice = client.post(url, proposal_form([("refer", "RF01", "a", [("pd", "> 0.2")]),
                                            ("refer", "RF01", "b", [("pd", "> 0.3")])]))  # fmt: skip
    assert "used by another row" in twice.content.decode()
    assert not PolicyVersion.objects.filter(portfolio=portfolio, status="proposed").exists()

    more = client.post(url, {**bad, "add_row": "1"}).content.decode()
    assert 'name="rules-2-code"' in more and "does not parse" in more  # a third, empty row
    wider = client.post(url, {**bad, "add_condition": "1"}).content.decode()
    assert 'name="rules-0-expression_3"' in wider  # a fourth condition column
    removed = client.post(url, {**bad, "rules-1-DELETE": "on"})
    assert removed.status_code == 302
    assert [r["code"] for r in PolicyVersion.objects.get(portfolio=portfolio, status="proposed").rules] == ["KO01"]


def test_a_viewer_reads_the_policy_but_cannot_propose_or_decide(officers, client):
    portfolio, alice, _, ann = officers
    client.force_login(alice)
    client.post(f"/policy/{portfolio.pk}/propose/", proposal_form([], approve_min_score=570))
    proposal = PolicyVersion.objects.get(portfolio=portfolio, status="proposed")
    client.force_login(ann)
    page = client.get(f"/policy/?portfolio={portfolio.pk}").content.decode()
    assert "In force: policy v1" in page and "Propose a change" not in page and "proposed" in page
    assert "Approve: put it in force" not in client.get(f"/policy/versions/{proposal.pk}/").content.decode()
    assert client.get(f"/policy/{portfolio.pk}/propose/").status_code == 403
    assert client.post(f"/policy/versions/{proposal.pk}/decide/", {"decision": "approve", "reason": "x"}).status_code == 403  # fmt: skip
    client.force_login(UserFactory(username="outsider"))
    assert client.get(f"/policy/versions/{proposal.pk}/").status_code == 404


@pytest.fixture
def scored_book(db):
    portfolio = synthetic_portfolio(n=300, seed=41, name="portal rules book")
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="analyst")  # scores through the API
    for officer in (alice, bob):
        portfolio_access_grant(portfolio=portfolio, grantee=officer, role="credit risk officer")
    version = model_version_create(portfolio=portfolio, kind="mlp", seed=1, hyperparameters=FAST,
                                   requested_by=developer)  # fmt: skip
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator, override_reason="portal rules test")
    return portfolio, developer, alice, bob


def test_a_knockout_added_in_the_decision_table_declines_a_real_time_score(scored_book, client):
    portfolio, analyst, alice, bob = scored_book
    api = APIClient()
    api.force_authenticate(analyst)
    # Cutoffs that approve everyone, so only the rule can decline.
    client.force_login(alice)
    client.post(f"/policy/{portfolio.pk}/propose/", proposal_form([], approve_min_score=-1e6, decline_below_score=-1e6))
    client.force_login(bob)
    first = PolicyVersion.objects.get(portfolio=portfolio, status="proposed")
    client.post(f"/policy/versions/{first.pk}/decide/", {"decision": "approve", "reason": "open book"})
    applicant = portfolio.applicants.order_by("id").first()
    before = api.post(f"/api/v1/portfolios/{portfolio.pk}/score/", {"external_id": applicant.external_id},
                      format="json").json()  # fmt: skip
    assert before["decision"] == "approve"

    dti = applicant.features["debt_to_income"]
    rows = [("knockout", "KO09", "Debt to income at or above the pilot limit", [("debt_to_income", f">= {dti}")])]
    client.force_login(alice)
    answer = client.post(f"/policy/{portfolio.pk}/propose/",
                         proposal_form(rows, approve_min_score=-1e6, decline_below_score=-1e6))  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:2000]
    proposal_id = int(re.search(r"/policy/versions/(\d+)/", answer["Location"]).group(1))
    client.force_login(bob)
    # Its impact, measured on a finished batch run's stored scores: everyone approved before, fewer after.
    run = batch_run_create(portfolio=portfolio, chunk_size=300)
    for chunk_id in run.chunks.values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    impact = policy_impact(policy_version=PolicyVersion.objects.get(pk=proposal_id))
    assert impact["old"]["approval_rate"] == 1.0 and 0 < impact["new"]["approval_rate"] < 1.0
    page = client.get(f"/policy/versions/{proposal_id}/").content.decode()
    assert f"Batch run {run.pk}, 300 scores" in page and "Approval rate" in page and "100 %" in page
    client.post(f"/policy/versions/{proposal_id}/decide/", {"decision": "approve", "reason": "pilot"})
    assert Portfolio.objects.get(pk=portfolio.pk).policy_version_id == proposal_id

    after = api.post(f"/api/v1/portfolios/{portfolio.pk}/score/", {"external_id": applicant.external_id},
                     format="json").json()  # fmt: skip
    assert after["decision"] == "decline" and after["policy_version"] == proposal_id
    assert "KO09" in [reason["code"] for reason in after["reasons"]]
    assert before["score"] == pytest.approx(after["score"])  # same model, same points: the rule declined it
