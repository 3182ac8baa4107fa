import numpy as np
import pytest
from django.core.management import call_command

from models.training import CreditModel
from scoring.inference import model_load
from scoring.models import ModelVersion
from scoring.services.access import portfolio_access_grant
from scoring.services.datasets import attach_outcomes, portfolio_data
from scoring.services.training import model_version_create, model_version_train
from tests.factories import UserFactory, synthetic_portfolio

FAST = {"max_epochs": 10, "patience": 3, "batch_size": 128}


@pytest.fixture
def portfolio(db):
    return synthetic_portfolio(n=3000, seed=3)


def test_portfolio_data_reads_features_history_and_outcomes(portfolio):
    data = attach_outcomes(portfolio_data(portfolio=portfolio, with_history=True), portfolio=portfolio)
    assert len(data) == 3000
    assert data.history.shape == (3000, 24, 3)
    assert data.history_mask.all()
    assert "sex" not in data.static.columns and "full_name" not in data.static.columns
    assert set(np.unique(data.defaulted)) == {0.0, 1.0}


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_training_records_a_reproducible_model_version(portfolio, kind):
    version = model_version_create(portfolio=portfolio, kind=kind, seed=5, hyperparameters=FAST)
    trained = model_version_train(model_version_id=version.pk)
    assert trained.status == ModelVersion.STATUS_TRAINED
    assert trained.metrics["test"]["auc"] > 0.6
    assert trained.baseline_metrics["test"]["auc"] > 0.6
    assert len(trained.training_data_fingerprint) == 64 and trained.training_rows == 3000
    assert trained.device == "cpu" and trained.code_version
    assert trained.progress["phase"] == "done" and trained.progress["history"]
    model = model_load(trained)
    assert isinstance(model, CreditModel) and model.kind == kind

    # Same data and seed: the same fingerprint and the same metrics.
    again = model_version_train(
        model_version_id=model_version_create(portfolio=portfolio, kind=kind, seed=5, hyperparameters=FAST).pk
    )
    assert again.training_data_fingerprint == trained.training_data_fingerprint
    assert again.metrics["test"]["auc"] == trained.metrics["test"]["auc"]
    assert again.version == trained.version + 1


def test_a_claimed_version_is_not_trained_twice(portfolio):
    version = model_version_create(portfolio=portfolio, kind="mlp", hyperparameters=FAST)
    assert model_version_train(model_version_id=version.pk) is not None
    assert model_version_train(model_version_id=version.pk) is None


@pytest.fixture
def developer(portfolio):
    user = UserFactory(username="developer")
    portfolio_access_grant(portfolio=portfolio, grantee=user, role="model developer")
    return user


def test_train_model_command_prints_the_metrics_table(portfolio, developer, capsys):
    call_command(
        "train_model",
        "--as",
        "developer",
        "--portfolio",
        portfolio.name,
        "--kind",
        "mlp",
        "--sync",
        "--param",
        "max_epochs=3",
        "--param",
        "batch_size=128",
    )
    out = capsys.readouterr().out
    assert "baseline LR (test)" in out and "AUC" in out
    version = ModelVersion.objects.get(portfolio=portfolio)
    assert version.status == "trained" and version.trained_by == developer


@pytest.mark.django_db(transaction=True)  # Optuna writes through its own connection
def test_tune_model_command_makes_the_best_trial_a_model_version(portfolio, developer, capsys):
    call_command(
        "tune_model", "--as", "developer", "--portfolio", portfolio.name, "--kind", "mlp", "--trials", "2", "--sync"
    )
    out = capsys.readouterr().out
    assert "Best parameters" in out
    version = ModelVersion.objects.get(portfolio=portfolio)
    assert version.tuning_study is not None and version.status == "trained" and version.trained_by == developer
