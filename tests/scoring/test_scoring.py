import numpy as np
import pytest
from django.core.management import call_command

from scoring.models import BatchRun, ModelVersion, Score, ScoreChunk
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_cancel, batch_run_create, batch_run_resume, score_chunk_run
from scoring.services.registry import RegistryError, model_version_approve, model_version_promote
from scoring.services.replay import replay_many
from scoring.services.scoring import ScoringError, scorable_version
from scoring.services.training import model_version_create, model_version_train
from tests.factories import UserFactory, synthetic_portfolio

FAST = {"max_epochs": 6, "patience": 3, "batch_size": 128}


def trained(portfolio, kind, developer, seed=1):
    version = model_version_create(
        portfolio=portfolio, kind=kind, seed=seed, hyperparameters=FAST, requested_by=developer
    )
    return model_version_train(model_version_id=version.pk)


@pytest.fixture
def cast(db):
    portfolio = synthetic_portfolio(n=1200, seed=9)
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    return portfolio, developer, validator


@pytest.fixture
def champion(cast):
    portfolio, developer, validator = cast
    version = trained(portfolio, "cnn", developer)
    model_version_approve(version=version, user=validator)
    return model_version_promote(version=version, user=validator)


def run_all_chunks(run, times=1):
    for _ in range(times):
        for chunk_id in run.chunks.order_by("index").values_list("id", flat=True):
            score_chunk_run(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


def test_four_eyes_the_trainer_cannot_approve_and_unapproved_models_cannot_score(cast):
    portfolio, developer, validator = cast
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="model validator")
    version = trained(portfolio, "mlp", developer)
    with pytest.raises(ScoringError):
        scorable_version(portfolio=portfolio, model_version=version)
    with pytest.raises(RegistryError, match="Four eyes"):
        model_version_approve(version=version, user=developer)
    with pytest.raises(RegistryError, match="approved"):
        model_version_promote(version=version, user=validator)
    outsider = UserFactory(username="outsider")
    with pytest.raises(RegistryError, match="validator"):
        model_version_approve(version=version, user=outsider)
    model_version_approve(version=version, user=validator)
    assert model_version_promote(version=version, user=validator).is_champion


def test_a_batch_run_scores_every_applicant_once_with_exact_explanations(champion):
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=250)
    assert run.chunks_total == 5
    run = run_all_chunks(run, times=2)  # every chunk delivered twice
    assert run.status == BatchRun.STATUS_DONE and run.rows_done == 1200 and run.chunks_done == 5
    scores = list(Score.objects.filter(run=run))
    assert len(scores) == 1200 and len({s.applicant_id for s in scores}) == 1200
    contributions = np.array([s.contributions for s in scores])
    log_odds = np.log(np.array([s.pd for s in scores]) / (1 - np.array([s.pd for s in scores])))
    base = np.array([s.base_log_odds for s in scores])
    assert np.abs(contributions.sum(axis=1) + base - log_odds).max() < 1e-4
    assert {s.decision for s in scores} <= {"approve", "refer", "decline"}
    temporal = [r for s in scores for r in s.reasons if r["feature"].startswith("history.days_past_due")]
    assert temporal and "days late in" in temporal[0]["text"]
    assert all(s.input_history is not None and len(s.input_hash) == 64 for s in scores)


def test_a_chunk_scored_again_after_its_claim_was_lost_writes_nothing_twice(champion):
    # A worker that stalled past the stale limit commits after another took its chunk over:
    # the second writer finds every row there (PostgreSQL: COPY conflicts, the fallback skips them).
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=600)
    chunk = run.chunks.order_by("index").first()
    assert score_chunk_run(chunk_id=chunk.pk) == "done"
    written = dict(Score.objects.filter(run=run).values_list("applicant_id", "input_hash"))
    assert len(written) == 600
    ScoreChunk.objects.filter(pk=chunk.pk).update(status="pending")
    assert score_chunk_run(chunk_id=chunk.pk) == "done"
    assert dict(Score.objects.filter(run=run).values_list("applicant_id", "input_hash")) == written


def test_a_cancelled_run_stops_and_resumes_to_completion(champion, django_capture_on_commit_callbacks):
    run = batch_run_create(portfolio=champion.portfolio, chunk_size=300)
    first = run.chunks.order_by("index").first()
    score_chunk_run(chunk_id=first.pk)
    batch_run_cancel(run=run)
    assert score_chunk_run(chunk_id=run.chunks.order_by("index")[1].pk) == "cancelled"
    run.refresh_from_db()
    assert run.status == BatchRun.STATUS_CANCELLED and run.rows_done == 300
    with django_capture_on_commit_callbacks(execute=False):
        batch_run_resume(run=run)
    run = run_all_chunks(run)
    assert run.status == BatchRun.STATUS_DONE
    assert Score.objects.filter(run=run).count() == 1200


def test_a_challenger_shadow_scores_and_differences_are_counted(champion):
    portfolio, validator = champion.portfolio, champion.approved_by
    challenger = trained(portfolio, "mlp", UserFactory(username="dev2"), seed=3)
    model_version_approve(version=challenger, user=validator)
    run = run_all_chunks(batch_run_create(portfolio=portfolio, challenger=challenger, chunk_size=600))
    assert Score.objects.filter(run=run, is_shadow=True).count() == 1200
    shadow = dict(Score.objects.filter(run=run, is_shadow=True).values_list("applicant_id", "decision"))
    main = dict(Score.objects.filter(run=run, is_shadow=False).values_list("applicant_id", "decision"))
    assert run.decisions_differ == sum(shadow[a] != main[a] for a in main)


def test_replay_reproduces_stored_scores_exactly(champion, capsys):
    run = run_all_chunks(batch_run_create(portfolio=champion.portfolio, chunk_size=400))
    scores = list(Score.objects.filter(run=run).select_related("model_version__schema", "model_version__portfolio"))
    replays = replay_many(scores)
    assert len(replays) == 1200
    assert all(r.identical for r in replays), [r.differences() for r in replays if not r.identical][:3]
    call_command("replay_score", str(scores[0].pk))
    assert "IDENTICAL" in capsys.readouterr().out


def test_score_portfolio_command_runs_in_process(champion, capsys):
    call_command("score_portfolio", "--portfolio", champion.portfolio.name, "--sync", "--chunk-size", "500")
    assert "done: 1,200/1,200 rows" in capsys.readouterr().out
    assert ModelVersion.objects.get(pk=champion.pk).is_champion


def test_nightly_rescore_runs_each_active_portfolio_with_a_champion_and_its_challenger(
    champion, django_capture_on_commit_callbacks
):
    from django_celery_beat.models import PeriodicTask

    from scoring.services.batch import nightly_runs_start

    assert PeriodicTask.objects.filter(task="scoring.tasks.nightly_rescore", enabled=True).exists()
    portfolio = champion.portfolio
    challenger = trained(portfolio, "mlp", UserFactory(username="dev3"), seed=4)
    model_version_approve(version=challenger, user=champion.approved_by)
    portfolio.challenger_version = challenger
    portfolio.save()
    with django_capture_on_commit_callbacks(execute=False):
        (run,) = nightly_runs_start()
        assert nightly_runs_start() == []  # a run still going is not started twice
    assert run.trigger == "nightly" and run.challenger_version == challenger
    run = run_all_chunks(run)
    assert run.status == BatchRun.STATUS_DONE and run.decisions_differ is not None
