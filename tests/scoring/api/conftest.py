"""A small API world without training: two portfolios with applicants, a model
version row and stored scores, and users of each portfolio. Tests that need a
trained model build their own (tests/scoring/api/test_api.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from scoring.models import Applicant, ModelVersion, Score
from scoring.services.access import portfolio_access_grant
from tests.factories import PortfolioFactory, UserFactory

FEATURES = {"income": 42000.0, "loan_amount": 9000.0, "duration_months": 36, "debt_to_income": 0.31,
            "employment_years": 4.5, "num_credit_lines": 3, "home_ownership": "rent", "purpose": "car",
            "region": "north"}  # fmt: skip


def client_for(user=None, **kwargs) -> APIClient:
    client = APIClient(**kwargs)
    if user is not None:
        client.force_authenticate(user)
    return client


def scored_applicants(portfolio, *, n: int, version: ModelVersion, prefix: str) -> list[Applicant]:
    """``n`` applicants, each with one score: points 500 + 10 i, decision by the portfolio's
    cut-offs; created one day apart, oldest first."""
    applicants = Applicant.objects.bulk_create(
        [
            Applicant(portfolio=portfolio, external_id=f"{prefix}{i:04d}", schema=portfolio.schema, features=FEATURES)
            for i in range(n)
        ]
    )
    start = timezone.now() - timedelta(days=n)
    scores = []
    for i, applicant in enumerate(applicants):
        points = 500.0 + 10 * i
        decision = "approve" if points >= 560 else "decline" if points < 530 else "refer"
        scores.append(
            Score(
                portfolio=portfolio,
                applicant=applicant,
                model_version=version,
                pd=0.1,
                score=points,
                decision=decision,
                base_log_odds=-2.9,
                reasons=[],
                contributions=[],
                input_features=FEATURES,
                input_hash=f"{i:064d}",
            )
        )
    Score.objects.bulk_create(scores)
    for i, applicant in enumerate(applicants):
        Applicant.objects.filter(pk=applicant.pk).update(created_at=start + timedelta(days=i))
        Score.objects.filter(applicant=applicant).update(created_at=start + timedelta(days=i))
    return applicants


@pytest.fixture
def api_world(db):
    mine = PortfolioFactory(name="Mine")
    theirs = PortfolioFactory(name="Theirs")
    owner = UserFactory(username="owner")
    stranger = UserFactory(username="stranger")
    portfolio_access_grant(portfolio=mine, grantee=owner, role="senior analyst")
    portfolio_access_grant(portfolio=theirs, grantee=stranger, role="senior analyst")
    versions = {
        p.pk: ModelVersion.objects.create(portfolio=p, version=1, kind="mlp", status="champion", schema=p.schema)
        for p in (mine, theirs)
    }
    return {
        "mine": mine,
        "theirs": theirs,
        "owner": owner,
        "stranger": stranger,
        "version": versions[mine.pk],
        "their_version": versions[theirs.pk],
        "applicants": scored_applicants(mine, n=8, version=versions[mine.pk], prefix="MINE"),
        "their_applicants": scored_applicants(theirs, n=3, version=versions[theirs.pk], prefix="THEIRS"),
    }
