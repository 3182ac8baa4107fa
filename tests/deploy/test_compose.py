"""docker/compose.yml: valid against the Compose Specification's JSON schema (the copy
check-jsonschema ships, so no network), and wired the way the service needs: the right
queues per worker, a GPU for training, health checks, non-root containers, migrations first.
(`docker compose up` itself cannot run here: this machine has no Docker engine.)"""

from __future__ import annotations

import re

import jsonschema
import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema

from tests.deploy.conftest import DOCKER, env_example_names

COMPOSE_TEXT = (DOCKER / "compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
APP_SERVICES = ["migrate", "web", "worker", "score", "train", "train-cpu", "beat"]
LONG_RUNNING_APP = ["web", "worker", "score", "train", "train-cpu", "beat"]


def test_compose_file_matches_the_compose_specification():
    schema = get_builtin_schema("vendor.compose-spec")
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors, errors


def test_the_schema_check_would_catch_a_misspelt_key():
    schema = get_builtin_schema("vendor.compose-spec")
    broken = yaml.safe_load(COMPOSE_TEXT)
    broken["services"]["web"]["helthcheck"] = broken["services"]["web"].pop("healthcheck")
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_every_part_of_the_stack_is_a_service():
    assert set(SERVICES) == {
        "postgres", "redis", "rabbitmq", "migrate", "web", "worker", "score", "train", "train-cpu", "beat", "flower"
    }  # fmt: skip


def environment(service: str) -> dict:
    return SERVICES[service]["environment"]


@pytest.mark.parametrize(
    ("service", "queues"),
    [("worker", "default"), ("score", "score"), ("train", "train"), ("train-cpu", "train")],
)
def test_each_worker_consumes_its_queue(service, queues):
    assert SERVICES[service]["command"] == ["/app/docker/start/worker"]
    assert environment(service)["WORKER_QUEUES"] == queues
    assert environment(service)["RISKAPP_ROLE"] == "worker"


def test_the_worker_start_script_passes_the_prefixed_queues_with_dash_q():
    script = (DOCKER / "start" / "worker").read_text()
    assert re.search(r'-Q "\$\(IFS=.*queues\[\*\]', script)
    assert 'queues+=("${prefix}${role}")' in script
    assert "prefix=${CELERY_QUEUE_PREFIX:-}" in script


def test_score_workers_autoscale_and_training_gets_one_pool_process():
    assert re.fullmatch(r"\$\{SCORE_AUTOSCALE:-\d+,\d+\}", environment("score")["WORKER_AUTOSCALE"])
    assert environment("train")["WORKER_CONCURRENCY"] == "1"
    assert environment("train-cpu")["WORKER_CONCURRENCY"] == "1"


def test_the_train_worker_reserves_an_nvidia_gpu_on_the_cuda_image():
    train = SERVICES["train"]
    (device,) = train["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    assert train["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert train["profiles"] == ["gpu"] and SERVICES["train-cpu"]["profiles"] == ["cpu"]
    assert "deploy" not in SERVICES["train-cpu"]


def test_the_makefile_picks_the_train_profile_and_uses_this_file():
    makefile = (DOCKER.parent / "Makefile").read_text()
    assert "docker compose -f docker/compose.yml" in makefile
    assert "--profile $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)" in makefile
    assert re.search(r"^up:.*\n\t\$\(COMPOSE\) up --build$", makefile, flags=re.MULTILINE)
    assert re.search(r"^down:.*\n\t\$\(COMPOSE\) down$", makefile, flags=re.MULTILINE)


@pytest.mark.parametrize("service", [*LONG_RUNNING_APP, "postgres", "redis", "rabbitmq", "flower"])
def test_every_long_running_service_has_a_health_check(service):
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[0] == "CMD" and len(test) > 1


@pytest.mark.parametrize("service", APP_SERVICES)
def test_application_containers_run_unprivileged(service):
    assert SERVICES[service]["user"] == "10001:10001"
    assert SERVICES[service]["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in SERVICES[service]["security_opt"]


@pytest.mark.parametrize("service", LONG_RUNNING_APP)
def test_the_app_starts_after_the_migrations_and_shares_the_data_volume(service):
    depends = SERVICES[service]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert "data:/data" in SERVICES[service]["volumes"]
    assert environment(service)["ARTIFACT_DIR"].startswith("/data/")


def test_the_migration_runs_once_and_the_web_server_never_migrates():
    assert SERVICES["migrate"]["command"] == ["/app/docker/start/migrate"]
    script = (DOCKER / "start" / "migrate").read_text()
    assert "manage.py migrate --no-input" in script and "manage.py grant_app_role" in script
    assert SERVICES["migrate"]["restart"] == "no"
    assert "manage.py migrate" not in (DOCKER / "start" / "web").read_text()


def test_secrets_have_no_defaults():
    for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "PII_ENCRYPTION_KEYS", "AUDIT_SIGNING_KEY", "FLOWER_BASIC_AUTH"):
        assert re.search(r"\$\{" + name + r":\?", COMPOSE_TEXT), name
        assert not re.search(r"\$\{" + name + r":-", COMPOSE_TEXT), name


def test_every_variable_compose_reads_is_listed_in_env_example():
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_TEXT))
    assert used - env_example_names() == set()


def test_the_public_ports_are_bound_to_loopback_by_default():
    assert SERVICES["web"]["ports"] == ["${WEB_BIND:-127.0.0.1}:${WEB_PORT:-8000}:8000"]
    assert SERVICES["flower"]["ports"][0].startswith("127.0.0.1:")
    for service in ("postgres", "redis", "rabbitmq"):
        assert "ports" not in SERVICES[service]


def test_the_app_connects_as_the_least_privileged_role_and_only_migrate_holds_the_owner():
    """The application role owns nothing (it cannot disable the audit triggers); the
    migration role's URL is given to the one-shot migrate service only."""
    for service in APP_SERVICES:
        environment = SERVICES[service]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://riskapp_app:")
        assert ("DATABASE_MIGRATE_URL" in environment) == (service == "migrate")
    assert SERVICES["migrate"]["environment"]["DATABASE_MIGRATE_URL"].startswith("postgres://riskapp_migrate:")
    init = (DOCKER / "postgres" / "init-roles.sh").read_text()
    assert "CREATE ROLE riskapp_app LOGIN NOSUPERUSER" in init and "OWNER TO riskapp_migrate" in init
    assert "./postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-roles.sh:ro" in SERVICES["postgres"]["volumes"]
