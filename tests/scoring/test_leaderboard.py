"""One training request for several families (a training group on one split) and the
leaderboard that compares them with the logistic baseline on the same rows: the API,
the portal's model page, the ``train_model`` command and the gate."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client, TestCase
from django.urls import reverse

from scoring.models import ModelVersion
from scoring.services.access import portfolio_access_grant
from scoring.services.training import model_group_create, model_version_train, training_data
from scoring.services.training import test_rows_sha256 as rows_hash
from scoring.services.training import training_split as split_of
from tests.conftest import flush_database
from tests.factories import UserFactory, synthetic_portfolio
from tests.scoring.api.conftest import client_for

FAST = {"mlp": {"max_epochs": 2, "patience": 1, "batch_size": 128}, "trees": {"n_estimators": 30, "num_threads": 1}}
FIGURES = ("auc", "gini", "ks", "brier")


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Portfolio A with an MLP and a trees version trained by one API request; portfolio B
    with a queued group of its own. Built once for the module, removed after it."""
    with django_db_blocker.unblock():
        mine, theirs = synthetic_portfolio(n=500, seed=5, name="Board A"), synthetic_portfolio(n=120, name="Board B")
        developer, other = UserFactory(username="board-dev"), UserFactory(username="board-other")
        portfolio_access_grant(portfolio=mine, grantee=developer, role="model developer")
        portfolio_access_grant(portfolio=theirs, grantee=other, role="model developer")
        body = {"portfolio": mine.pk, "kinds": ["mlp", "trees"], "seed": 3, "hyperparameters": FAST}
        with transaction.atomic(), TestCase.captureOnCommitCallbacks(execute=False) as enqueued:
            response = client_for(developer).post("/api/v1/models/train/", body, format="json")
        assert response.status_code == 202, response.content
        assert len(enqueued) == 2  # one training task per family, once committed
        for queued in response.json()["group_versions"]:
            trained = model_version_train(model_version_id=queued["id"])
            assert trained is not None and trained.status == ModelVersion.STATUS_TRAINED, trained and trained.error
        group = list(ModelVersion.objects.filter(portfolio=mine).order_by("version"))
        theirs_group = model_group_create(portfolio=theirs, kinds=["mlp", "trees"], requested_by=other)
        yield {"mine": mine, "theirs": theirs, "developer": developer, "other": other, "response": response.json(),
               "group": group, "theirs_group": theirs_group}  # fmt: skip
        flush_database()  # as after a transactional test


def test_a_request_for_two_kinds_trains_two_versions_in_one_group_on_identical_rows(db, world):
    mlp, trees = world["group"]
    assert [v.kind for v in world["group"]] == ["mlp", "trees"]
    assert mlp.training_group is not None and mlp.training_group == trees.training_group
    assert world["response"]["training_group"] == str(mlp.training_group)
    assert [v["id"] for v in world["response"]["group_versions"]] == [mlp.pk, trees.pk]
    assert mlp.hyperparameters["max_epochs"] == 2 and trees.hyperparameters["n_estimators"] == 30
    assert mlp.seed == trees.seed == 3 and mlp.training_data_fingerprint == trees.training_data_fingerprint
    # Each version recorded which applicants it was tested on: the same ones, and those of the seeded split.
    scheme = mlp.validations["trained_on"]
    assert scheme == trees.validations["trained_on"]
    hashes = {v.validations[scheme]["test_rows_sha256"] for v in (mlp, trees)}
    data, y = training_data(portfolio=world["mine"], kind="mlp")
    assert hashes == {rows_hash(data, split_of(data, y, seed=3)[1])}
    assert mlp.validations[scheme]["rows"] == trees.validations[scheme]["rows"]
    assert mlp.metrics["test"]["n"] == trees.metrics["test"]["n"]


def test_the_leaderboard_api_lists_both_versions_and_the_baseline_with_stored_figures(db, world):
    mlp, trees = world["group"]
    for version in (mlp, trees):  # the same board from either version of the group
        response = client_for(world["developer"]).get(f"/api/v1/models/{version.pk}/leaderboard/")
        assert response.status_code == 200, response.content
        board = response.json()
        assert board["training_group"] == str(mlp.training_group)
        assert board["same_rows"] is True and board["figures_from"] == "stored"
        assert board["test_rows"] == mlp.metrics["test"]["n"]
        assert [e["kind"] for e in board["entries"]] == ["mlp", "trees"]
        for entry, stored in zip(board["entries"], (mlp, trees), strict=True):
            for key in FIGURES:
                assert entry["metrics"][key] == pytest.approx(stored.metrics["test"][key])
            assert len(entry["metrics"]["deciles"]) == 10
            assert entry["fit_seconds"] > 0 and entry["training_seconds"] >= entry["fit_seconds"] * 0.5
            assert entry["explained_rows_per_s"] > 0
        assert board["baseline"]["auc"] == pytest.approx(mlp.baseline_metrics["test"]["auc"])
        assert board["baseline_fitted_with"] == mlp.pk and len(board["baseline"]["deciles"]) == 10


def test_the_model_page_shows_the_leaderboard_with_the_baseline(db, world):
    mlp, trees = world["group"]
    client = Client()
    client.force_login(world["developer"])
    page = client.get(reverse("portal:model_detail", args=[trees.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="leaderboard"' in html and 'id="leaderboard-calibration"' in html
    board = html.split('id="leaderboard"', 1)[1].split("</table>", 1)[0]
    assert f"v{mlp.version} MLP" in board and f"v{trees.version} TREES" in board and "Logistic baseline" in board
    for version in (mlp, trees):
        assert f"{version.metrics['test']['auc']:.4f}" in board
    assert f"{mlp.baseline_metrics['test']['auc']:.4f}" in board


def test_another_portfolios_group_is_a_404(db, world):
    mine, theirs = world["group"][0], world["theirs_group"][0]
    other, developer = client_for(world["other"]), client_for(world["developer"])
    missing = developer.get("/api/v1/models/987654321/leaderboard/")
    assert missing.status_code == 404
    hidden = developer.get(f"/api/v1/models/{theirs.pk}/leaderboard/")
    assert hidden.status_code == 404 and hidden.json() == missing.json()
    assert other.get(f"/api/v1/models/{mine.pk}/leaderboard/").status_code == 404
    # Their own (queued) group: both listed, no figures yet.
    board = other.get(f"/api/v1/models/{theirs.pk}/leaderboard/").json()
    assert [e["metrics"] for e in board["entries"]] == [None, None] and board["baseline"] is None
    portal = Client()
    portal.force_login(world["developer"])
    assert portal.get(reverse("portal:model_detail", args=[theirs.pk])).status_code == 404


def test_versions_stored_on_different_rows_are_scored_again_on_the_same_split(db, world):
    mlp, trees = world["group"]
    scheme = trees.validations["trained_on"]
    original = trees.validations
    tampered = {**original, scheme: {**original[scheme], "test_rows_sha256": "0" * 64}}
    ModelVersion.objects.filter(pk=trees.pk).update(validations=tampered)
    try:
        board = client_for(world["developer"]).get(f"/api/v1/models/{mlp.pk}/leaderboard/").json()
    finally:
        ModelVersion.objects.filter(pk=trees.pk).update(validations=original)
    assert board["figures_from"] == "rescored" and board["same_rows"] is True
    # Rescored on the candidate's (the MLP's) test split, which is the stored one: the same figures.
    for entry, stored in zip(board["entries"], (mlp, trees), strict=True):
        assert entry["metrics"]["auc"] == pytest.approx(stored.metrics["test"]["auc"], abs=1e-9)


def test_one_kind_still_trains_alone_and_kind_with_kinds_is_refused(db, world, django_capture_on_commit_callbacks):
    developer = client_for(world["developer"])
    body = {"portfolio": world["mine"].pk, "kind": "mlp", "hyperparameters": FAST["mlp"]}
    with django_capture_on_commit_callbacks(execute=False):
        alone = developer.post("/api/v1/models/train/", body, format="json")
    assert alone.status_code == 202
    assert alone.json()["training_group"] is None and [v["id"] for v in alone.json()["group_versions"]] == [
        alone.json()["id"]
    ]
    both = developer.post("/api/v1/models/train/", {**body, "kinds": ["trees"]}, format="json")
    assert both.status_code == 400 and "kinds" in both.json()["error"]["details"]
    stranger = {"portfolio": world["mine"].pk, "kinds": ["mlp", "trees"], "hyperparameters": {"cnn": {}}}
    refused = developer.post("/api/v1/models/train/", stranger, format="json")
    assert refused.status_code == 400 and "hyperparameters" in refused.json()["error"]["details"]
    ModelVersion.objects.filter(pk=alone.json()["id"]).delete()


def test_the_train_model_command_trains_several_kinds_in_one_group(db, world, capsys):
    before = set(ModelVersion.objects.values_list("pk", flat=True))
    call_command(
        "train_model", "--portfolio", world["mine"].name, "--kind", "mlp", "--kind", "trees", "--sync",
        "--as", world["developer"].username, "--param", "max_epochs=1", "--param", "n_estimators=10",
    )  # fmt: skip
    new = list(ModelVersion.objects.exclude(pk__in=before).order_by("version"))
    try:
        assert [v.kind for v in new] == ["mlp", "trees"] and new[0].training_group == new[1].training_group
        assert all(v.status == ModelVersion.STATUS_TRAINED for v in new)
        assert new[0].hyperparameters["max_epochs"] == 1 and new[1].hyperparameters["n_estimators"] == 10
        assert "Training group" in capsys.readouterr().out
    finally:
        ModelVersion.objects.filter(pk__in=[v.pk for v in new]).delete()


def test_the_portal_train_form_trains_the_families_chosen_in_one_group(db, world, django_capture_on_commit_callbacks):
    client = Client()
    client.force_login(world["developer"])
    before = set(ModelVersion.objects.values_list("pk", flat=True))
    form = {"portfolio": world["mine"].pk, "kind": "mlp", "also": ["trees"], "seed": 4, "max_epochs": 3}
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        response = client.post(reverse("portal:model_train"), form)
    new = list(ModelVersion.objects.exclude(pk__in=before).order_by("version"))
    assert response.status_code == 302 and len(enqueued) == 2
    assert [v.kind for v in new] == ["mlp", "trees"] and new[0].training_group == new[1].training_group
    assert new[0].seed == new[1].seed == 4
    assert new[0].hyperparameters == {"max_epochs": 3} and "max_epochs" not in new[1].hyperparameters


def test_a_version_trained_alone_has_a_leaderboard_of_one(db, world):
    alone = model_group_create(portfolio=world["mine"], kinds=["trees"], requested_by=world["developer"])[0]
    assert alone.training_group is None
    board = client_for(world["developer"]).get(f"/api/v1/models/{alone.pk}/leaderboard/").json()
    assert board["training_group"] is None and [e["id"] for e in board["entries"]] == [alone.pk]
