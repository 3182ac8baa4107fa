"""The review queue for "refer": the queue, take / release / decide, the one rule of who
reviews, the audit trail and the override report (scoring.services.reviews)."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connections

from scoring import selectors
from scoring.models import Applicant, AuditEvent, ModelVersion, ReviewDecision, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.reviews import (
    REASON_MAX_CHARS,
    ReviewConflict,
    ReviewForbidden,
    ReviewInvalid,
    review_decide,
    review_release,
    review_take,
)
from tests.factories import PortfolioFactory, UserFactory

REASON = "Income verified with three payslips; the new job is permanent."


def decision(portfolio, version, applicant, *, points: float, decision: str = "refer", requested_by=None, n=0):
    return Score.objects.create(
        portfolio=portfolio, applicant=applicant, model_version=version, pd=0.08, score=points, decision=decision,
        base_log_odds=-2.4, input_features=applicant.features, input_hash=f"{applicant.pk:032d}{n:032d}",
        requested_by=requested_by,
    )  # fmt: skip


def applicant(portfolio, external_id: str) -> Applicant:
    return Applicant.objects.create(
        portfolio=portfolio, external_id=external_id, schema=portfolio.schema, features={"income": 1000.0}
    )


@pytest.fixture
def book(db):
    """Two portfolios; underwriters uw_a and uw_b of "mine", uw_other of "theirs", an analyst of "mine"."""
    mine, theirs = PortfolioFactory(name="mine"), PortfolioFactory(name="theirs")
    users = {name: UserFactory(username=name) for name in ("uw_a", "uw_b", "uw_other", "analyst")}
    for name in ("uw_a", "uw_b"):
        portfolio_access_grant(portfolio=mine, grantee=users[name], role="underwriter")
    portfolio_access_grant(portfolio=theirs, grantee=users["uw_other"], role="underwriter")
    portfolio_access_grant(portfolio=mine, grantee=users["analyst"], role="senior analyst")
    version = ModelVersion.objects.create(portfolio=mine, version=1, kind="mlp", status="champion", schema=mine.schema)
    other = ModelVersion.objects.create(
        portfolio=theirs, version=1, kind="mlp", status="champion", schema=theirs.schema
    )
    applicants = [applicant(mine, f"M{i}") for i in range(4)]
    scores = {
        "refer": decision(mine, version, applicants[0], points=545),  # in the band: the model refers
        "rule_refer": decision(mine, version, applicants[1], points=575),  # points approve; a refer rule referred
        "approve": decision(mine, version, applicants[2], points=600, decision="approve"),
        "scored_by_analyst": decision(mine, version, applicants[3], points=540, requested_by=users["analyst"]),
        "theirs": decision(theirs, other, applicant(theirs, "T0"), points=545),
    }
    return {"mine": mine, "theirs": theirs, "users": users, "scores": scores, "version": version}


def test_the_queue_holds_each_applicants_latest_refer_until_a_person_decides_it(book):
    users, scores = book["users"], book["scores"]
    queue = set(selectors.review_queue(user=users["uw_a"]).values_list("pk", flat=True))
    assert queue == {scores["refer"].pk, scores["rule_refer"].pk, scores["scored_by_analyst"].pk}
    # A newer decision of the applicant replaces the refer; a refer superseded is not a case.
    newer = decision(book["mine"], book["version"], scores["refer"].applicant, points=600, decision="approve", n=1)
    assert scores["refer"].pk not in set(selectors.review_queue(user=users["uw_a"]).values_list("pk", flat=True))
    newer.delete()
    review_take(score=scores["refer"], user=users["uw_a"])
    review_decide(score=scores["refer"], user=users["uw_a"], decision="approve", reason=REASON)
    assert scores["refer"].pk not in set(selectors.review_queue(user=users["uw_a"]).values_list("pk", flat=True))
    # Rescoring the same application (a nightly run) does not bring a decided case back.
    decision(book["mine"], book["version"], scores["refer"].applicant, points=546, n=0)
    assert not selectors.review_queue(user=users["uw_a"]).filter(applicant=scores["refer"].applicant).exists()


def test_the_queue_is_read_through_the_gate(book):
    users, scores = book["users"], book["scores"]
    assert set(selectors.review_queue(user=users["uw_other"]).values_list("pk", flat=True)) == {scores["theirs"].pk}
    assert selectors.review_case_get(user=users["uw_other"], score_id=scores["refer"].pk) is None
    assert selectors.review_queue(user=UserFactory(username="nobody")).count() == 0


def test_two_underwriters_cannot_take_the_same_case_and_the_holder_can_release_it(book):
    users, score = book["users"], book["scores"]["refer"]
    review = review_take(score=score, user=users["uw_a"])
    assert review.assigned_to == users["uw_a"] and review.state == "taken" and review.model_decision == "refer"
    with pytest.raises(ReviewConflict, match="being reviewed by uw_a"):
        review_take(score=score, user=users["uw_b"])
    assert review_take(score=score, user=users["uw_a"]).pk == review.pk  # taking one's own again: no change
    with pytest.raises(ReviewConflict, match="not taken by you"):
        review_release(score=score, user=users["uw_b"])
    with pytest.raises(ReviewConflict, match="not assigned to you"):
        review_decide(score=score, user=users["uw_b"], decision="approve", reason=REASON)
    released = review_release(score=score, user=users["uw_a"])
    assert released.state == "open" and released.assigned_to is None
    assert review_take(score=score, user=users["uw_b"]).assigned_to == users["uw_b"]
    denied = AuditEvent.objects.filter(action__startswith="review.", outcome="denied").values_list(
        "actor_username", flat=True
    )
    assert sorted(denied) == ["uw_b", "uw_b", "uw_b"]


@pytest.mark.django_db(transaction=True)
def test_of_two_underwriters_taking_at_the_same_moment_exactly_one_gets_the_case():
    mine = PortfolioFactory(name="race")
    version = ModelVersion.objects.create(portfolio=mine, version=1, kind="mlp", status="champion", schema=mine.schema)
    takers = [UserFactory(username=f"racer{i}") for i in range(4)]
    for user in takers:
        portfolio_access_grant(portfolio=mine, grantee=user, role="underwriter")
    score = decision(mine, version, applicant(mine, "R0"), points=545)
    barrier = threading.Barrier(len(takers))
    won, refused, errors = [], [], []

    def take(user):
        try:
            barrier.wait(timeout=30)
            won.append(review_take(score=score, user=user).assigned_to_id)
        except ReviewConflict:
            refused.append(user.pk)
        except Exception as exc:  # reported below; a thread must not die silently
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take, args=(user,)) for user in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(won) == 1 and len(refused) == len(takers) - 1
    assert ReviewDecision.objects.get(score=score).assigned_to_id == won[0]
    assert AuditEvent.objects.filter(action="review.take", outcome="success").count() == 1


def test_a_decision_needs_approve_or_decline_and_a_bounded_reason(book):
    users, score = book["users"], book["scores"]["refer"]
    review_take(score=score, user=users["uw_a"])
    for bad in ("", "   ", "too short"):
        with pytest.raises(ReviewInvalid, match="reason"):
            review_decide(score=score, user=users["uw_a"], decision="approve", reason=bad)
    with pytest.raises(ReviewInvalid, match="longer than"):
        review_decide(score=score, user=users["uw_a"], decision="approve", reason="x" * (REASON_MAX_CHARS + 1))
    with pytest.raises(ReviewInvalid, match="approve or decline"):
        review_decide(score=score, user=users["uw_a"], decision="refer", reason=REASON)
    assert ReviewDecision.objects.get(score=score).decided_at is None


def test_only_an_underwriter_of_the_portfolio_who_did_not_request_the_decision_reviews_it(book):
    users, scores = book["users"], book["scores"]
    with pytest.raises(ReviewForbidden, match="underwriter"):
        review_take(score=scores["refer"], user=users["analyst"])  # the senior analyst holds no review grant
    with pytest.raises(ReviewForbidden, match="underwriter"):
        review_take(score=scores["refer"], user=users["uw_other"])  # an underwriter of another portfolio
    analyst = users["analyst"]
    portfolio_access_grant(portfolio=book["mine"], grantee=analyst, role="underwriter")
    analyst = type(analyst).objects.get(pk=analyst.pk)  # a fresh row: permissions are cached per object
    with pytest.raises(ReviewForbidden, match="Four eyes"):
        review_take(score=scores["scored_by_analyst"], user=analyst)
    assert review_take(score=scores["refer"], user=analyst).assigned_to == analyst
    with pytest.raises(ReviewConflict, match="not in the review queue"):
        review_take(score=scores["approve"], user=users["uw_a"])
    assert not ReviewDecision.objects.filter(score__in=[scores["scored_by_analyst"], scores["approve"]]).exists()


def test_a_decision_is_stored_beside_the_models_audited_before_and_after_and_final(book, append_only, capsys):
    users, scores = book["users"], book["scores"]
    review_take(score=scores["rule_refer"], user=users["uw_a"])
    review = review_decide(score=scores["rule_refer"], user=users["uw_a"], decision="decline", reason=f"  {REASON} ")
    assert (review.decision, review.reason, review.decided_by, review.model_decision) == (
        "decline",
        REASON,
        users["uw_a"],
        "approve",
    )
    assert review.is_override  # the points approve; the person declined
    scores["rule_refer"].refresh_from_db()
    assert scores["rule_refer"].decision == "refer"  # the model's decision row is untouched
    event = AuditEvent.objects.get(action="review.decide", outcome="success")
    assert event.actor_username == "uw_a" and event.object_ids == [scores["rule_refer"].pk]
    assert event.details["before"] == {"state": "taken", "assigned_to": users["uw_a"].pk, "final_decision": None,
                                       "decided_by": None, "override": None}  # fmt: skip
    assert event.details["after"]["final_decision"] == "decline" and event.details["after"]["override"] is True
    assert event.details["reason"] == REASON and event.details["model_decision"] == "approve"
    with pytest.raises(ReviewConflict, match="decided by review already"):
        review_decide(score=scores["rule_refer"], user=users["uw_a"], decision="approve", reason=REASON)
    with pytest.raises(ReviewConflict):
        review_release(score=scores["rule_refer"], user=users["uw_a"])
    review.reason = "rewritten afterwards"
    with pytest.raises(ValueError, match="final"):
        review.save()
    call_command("verify_audit_log", "--no-checkpoint")
    assert "BROKEN" not in capsys.readouterr().out


def test_the_override_report_counts_referred_reviewed_and_overrides_per_model_version(book):
    users, scores = book["users"], book["scores"]
    for key, final in (("refer", "approve"), ("rule_refer", "decline"), ("scored_by_analyst", "decline")):
        review_take(score=scores[key], user=users["uw_a"])
        review_decide(score=scores[key], user=users["uw_a"], decision=final, reason=REASON)
    (row,) = selectors.review_report(user=users["uw_a"], portfolio=book["mine"])
    assert row["model_version"] == book["version"]
    assert {k: row[k] for k in ("referred", "reviewed", "approved", "declined", "overrides")} == {
        "referred": 3, "reviewed": 3, "approved": 1, "declined": 2, "overrides": 1,
    }  # fmt: skip
    assert row["override_rate"] == pytest.approx(1 / 3)
    assert selectors.review_report(user=users["uw_other"], portfolio=book["mine"]) == []
