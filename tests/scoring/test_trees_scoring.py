"""A trees model version through the whole service, exactly as the networks:
training with the baseline, promotion, batch, replay (identical), real-time,
what-if and monitoring."""

import numpy as np
import pytest

from models.families.trees import TreeModel
from scoring.inference import model_load
from scoring.models import BatchRun, ModelVersion, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_create, score_chunk_run
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.replay import replay_many
from scoring.services.scoring import score_realtime, score_whatif
from scoring.services.training import model_version_create, model_version_train
from tests.factories import UserFactory, synthetic_portfolio

FAST = {"n_estimators": 60, "num_threads": 1}


@pytest.fixture
def champion(db):
    portfolio = synthetic_portfolio(n=1200, seed=9)
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    version = model_version_create(
        portfolio=portfolio, kind="trees", seed=1, hyperparameters=FAST, requested_by=developer
    )
    version = model_version_train(model_version_id=version.pk)
    assert version.status == ModelVersion.STATUS_TRAINED, version.error
    model_version_approve(version=version, user=validator)
    return model_version_promote(version=version, user=validator, override_reason="test: small portfolio")


def test_a_trees_champion_scores_batch_with_exact_explanations_and_replays_identically(champion):
    assert champion.metrics["test"]["auc"] > 0.6 and champion.baseline_metrics["test"]["auc"] > 0.6
    assert isinstance(model_load(champion), TreeModel)
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=400)
    for chunk_id in run.chunks.order_by("index").values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    run.refresh_from_db()
    assert run.status == BatchRun.STATUS_DONE and run.rows_done == 1200
    scores = list(Score.objects.filter(run=run).select_related("model_version"))
    contributions = np.array([s.contributions for s in scores])
    pd_ = np.array([s.pd for s in scores])
    base = np.array([s.base_log_odds for s in scores])
    assert np.abs(contributions.sum(axis=1) + base - np.log(pd_ / (1 - pd_))).max() < 1e-6
    assert sum(bool(s.reasons) for s in scores) > len(scores) // 2  # reasons name what raised the risk
    replays = replay_many(scores)
    assert len(replays) == 1200
    assert all(r.identical for r in replays), [r.differences() for r in replays if not r.identical][:3]


def test_a_trees_champion_scores_in_real_time_and_what_if(champion):
    applicant = champion.portfolio.applicants.order_by("pk").first()
    score = score_realtime(portfolio=champion.portfolio, applicant=applicant)
    assert score.model_version_id == champion.pk and score.reasons
    changed = score_whatif(portfolio=champion.portfolio, applicant=applicant, features={})
    assert changed.row.pd == pytest.approx(score.pd, abs=1e-12)
