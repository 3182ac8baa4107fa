"""The same queues and routes on every broker the service supports (the health check's
handling of a dead broker of each transport is in tests/scoring/test_health.py)."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import settings_for

BROKERS = {
    "redis": {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"},
    "rabbitmq": {"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"},
    "sqs": {
        "CELERY_BROKER_URL": "sqs://",
        "CELERY_SQS_QUEUE_URL_BASE": "https://sqs.eu-west-1.amazonaws.com/123456789012/",
    },
    "filesystem": {"CELERY_BROKER_URL": "filesystem://"},
}
EXPECTED_ROUTES = {
    "scoring.tasks.score_chunk": "p-score",
    "scoring.tasks.score_recover_runs": "p-score",
    "scoring.tasks.train_model_version": "p-train",
    "scoring.tasks.tune_trial": "p-train",
    "scoring.tasks.import_file": "p-default",
    "scoring.tasks.nightly_rescore": "p-default",
}


@pytest.mark.parametrize("broker", BROKERS)
def test_tasks_are_routed_to_the_same_declared_queues_on_every_broker(broker):
    facts = settings_for(CELERY_QUEUE_PREFIX="p-", **BROKERS[broker])
    assert facts["routes"] == EXPECTED_ROUTES
    # One direct exchange per queue, named like it, routing key = queue name.
    assert facts["declared"] == [[name, name, "direct", name] for name in ("p-default", "p-score", "p-train")]


def test_sqs_lists_the_queues_so_workers_need_no_rights_to_create_them():
    options = settings_for(CELERY_QUEUE_PREFIX="p-", **BROKERS["sqs"])["transport_options"]
    assert options["predefined_queues"] == {
        name: {"url": f"https://sqs.eu-west-1.amazonaws.com/123456789012/{name}"}
        for name in ("p-default", "p-score", "p-train")
    }
    assert options["region"] == "eu-west-1"  # read from the queue URL
    assert 0 <= options["wait_time_seconds"] <= 20
