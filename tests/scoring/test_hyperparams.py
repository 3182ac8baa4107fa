"""Bounded work: one validator of hyper-parameters over each family's declared space,
asked by every entry point (API, portal, command), and bounds on trials and on the
training one user may queue."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from models.families import FAMILIES
from models.training import KINDS, CreditModel
from scoring.models import ModelVersion, TuningStudy
from scoring.services.access import portfolio_access_grant
from scoring.services.hyperparams import HyperparameterError, family_space, hyperparameters_validate
from tests.factories import UserFactory, synthetic_portfolio
from tests.scoring.api.conftest import client_for

pytestmark = pytest.mark.django_db

REFUSED = [
    ({"max_epochs": 1e9}, "max_epochs"),
    ({"hidden": [4096, 4096, 4096, 4096]}, "hidden"),
    ({"max_epochs": "abc"}, "max_epochs"),
    ({"device": "cuda:9"}, "device"),
    ({"hidden": [0]}, "hidden"),
    ({"hidden": [32, 32, 32, 32, 32]}, "hidden"),
    ({"lr": -1}, "lr"),
    ({"batch_size": True}, "batch_size"),
    ({"wizardry": 3}, "wizardry"),
    ({"dropout": 1.5}, "dropout"),
]


@pytest.fixture
def developer_world():
    portfolio = synthetic_portfolio(n=60, seed=3)
    developer = UserFactory(username="dev")
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="model developer")
    return portfolio, developer


@pytest.mark.parametrize("kind", KINDS)
def test_the_current_defaults_of_every_family_are_inside_its_space(kind):
    params = CreditModel(kind).get_params()
    space = family_space(kind)
    given = {k: v for k, v in params.items() if k in space and v is not None}
    given["conv_channels"] = list(given["conv_channels"]) if "conv_channels" in given else None
    given = {k: v for k, v in given.items() if v is not None}
    assert hyperparameters_validate(kind=kind, values=given).keys() == given.keys()
    assert hyperparameters_validate(kind=kind, values={"max_epochs": 40.0}) == {"max_epochs": 40}


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_the_service_and_the_family_refuse_the_same_values(kind):
    """One bound in one place: whatever the family's own check refuses, the service
    refuses, naming the same parameter (the service adds only the GPU count)."""
    from models.params import ParamError

    family = FAMILIES[kind]
    for values, _field in REFUSED:
        try:
            family.check(values)
        except ParamError:
            with pytest.raises(HyperparameterError):
                hyperparameters_validate(kind=kind, values=values)
        else:
            assert values.get("device") == "cuda:9", (kind, values)  # only the deployment's GPU count differs
    assert family.check(family.defaults()) == hyperparameters_validate(kind=kind, values=family.defaults())


def test_the_tuning_search_space_stays_inside_the_validator():
    import optuna

    from scoring.services.tuning import search_space

    for kind in FAMILIES:
        sampler = optuna.samplers.RandomSampler(seed=0)
        study = optuna.create_study(sampler=sampler)
        for _ in range(20):
            trial = study.ask()
            hyperparameters_validate(kind=kind, values=search_space(trial, kind))


def test_the_api_answers_a_clear_400_for_values_outside_the_space(developer_world):
    portfolio, developer = developer_world
    api = client_for(developer)
    for values, field in REFUSED:
        response = api.post(
            "/api/v1/models/train/", {"portfolio": portfolio.pk, "kind": "mlp", "hyperparameters": values},
            format="json",
        )  # fmt: skip
        assert response.status_code == 400, (values, response.content)
        error = response.json()["error"]
        assert error["code"] == "invalid" and field in error["message"], values
        assert field in error["details"]["hyperparameters"], values
    assert not ModelVersion.objects.exists()


def test_the_cnn_takes_one_width_and_the_mlp_a_list():
    with pytest.raises(HyperparameterError):
        hyperparameters_validate(kind="cnn", values={"hidden": [16, 16]})
    assert hyperparameters_validate(kind="cnn", values={"hidden": 32}) == {"hidden": 32}
    assert hyperparameters_validate(kind="mlp", values={"hidden": 32}) == {"hidden": [32]}


def test_the_command_and_the_portal_share_the_validator(developer_world, client):
    portfolio, developer = developer_world
    with pytest.raises(CommandError, match="max_epochs"):
        call_command("train_model", "--as", developer.username, "--portfolio", portfolio.name, "--kind", "mlp",
                     "--param", "max_epochs=1000000000", "--no-wait")  # fmt: skip
    with pytest.raises(CommandError, match="device"):
        call_command("train_model", "--as", developer.username, "--portfolio", portfolio.name, "--kind", "mlp",
                     "--param", 'device="cuda:9"', "--no-wait")  # fmt: skip
    client.force_login(developer)
    response = client.post("/models/train/", {"portfolio": portfolio.pk, "kind": "mlp", "seed": 0, "max_epochs": 10**9})
    assert response.status_code in (200, 302, 400)
    assert not ModelVersion.objects.exists()


def test_trials_and_queued_training_per_user_are_bounded(developer_world, settings):
    portfolio, developer = developer_world
    api = client_for(developer)
    response = api.post("/api/v1/models/tune/", {"portfolio": portfolio.pk, "kind": "mlp", "n_trials": 200},
                        format="json")  # fmt: skip
    assert response.status_code == 400 and "n_trials" in response.json()["error"]["details"]
    for action in ("train", "tune"):  # found by Schemathesis: an unbounded seed overflowed SQLite (a 500)
        huge = api.post(f"/api/v1/models/{action}/", {"portfolio": portfolio.pk, "kind": "mlp", "seed": 2**70},
                        format="json")  # fmt: skip
        assert huge.status_code == 400 and "seed" in huge.json()["error"]["details"], action
    assert not TuningStudy.objects.exists()
    for _ in range(settings.TRAIN_MAX_QUEUED_PER_USER):
        assert api.post("/api/v1/models/train/", {"portfolio": portfolio.pk, "kind": "mlp"},
                        format="json").status_code == 202  # fmt: skip
    response = api.post("/api/v1/models/train/", {"portfolio": portfolio.pk, "kind": "mlp"}, format="json")
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "throttled"
    assert ModelVersion.objects.filter(trained_by=developer).count() == settings.TRAIN_MAX_QUEUED_PER_USER
