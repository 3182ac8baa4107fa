"""The Kubernetes manifests under docker/k8s: valid against the Kubernetes API schemas
(offline, kubernetes-validate) and, for KEDA's custom resources, against the schema in
keda.schema.json; consistent with each other and with riskapp/settings.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.deploy.conftest import K8S, env_example_names, k8s_documents, settings_for, yaml_documents

KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
# The oldest Kubernetes release we claim to run on, and the newest whose schemas we have.
KUBERNETES_VERSIONS = sorted({"1.30.0", latest_version()})
OVERLAYS = ("redis", "rabbitmq", "sqs")

DOCUMENTS = k8s_documents()
KUBERNETES_DOCUMENTS = [(path, doc) for path, doc in DOCUMENTS if doc["kind"] not in KEDA_KINDS]
KEDA_DOCUMENTS = [(path, doc) for path, doc in DOCUMENTS if doc["kind"] in KEDA_KINDS]


def doc_id(item: tuple[Path, dict]) -> str:
    path, doc = item
    return f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}"


def base_objects(kind: str) -> dict[str, dict]:
    return {
        doc["metadata"]["name"]: doc for path, doc in DOCUMENTS if doc["kind"] == kind and path.parent.name == "base"
    }


def config_map() -> dict[str, str]:
    return base_objects("ConfigMap")["riskapp-config"]["data"]


def score_queue() -> str:
    """The score queue's name as the deployed settings compute it from the ConfigMap's prefix."""
    return settings_for(CELERY_QUEUE_PREFIX=config_map()["CELERY_QUEUE_PREFIX"])["queues_by_role"]["score"]


def test_there_is_something_to_validate():
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "Job", "PersistentVolumeClaim"} <= kinds
    assert {"ScaledObject", "TriggerAuthentication"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("item", KUBERNETES_DOCUMENTS, ids=doc_id)
def test_every_manifest_is_valid_kubernetes(item, version):
    _, doc = item
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_a_broken_manifest():
    # Guards the test above: strict validation must catch a misspelt field.
    deployment = json.loads(json.dumps(base_objects("Deployment")["riskapp-web"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrm"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, latest_version(), strict=True)


@pytest.fixture(scope="module")
def keda_validator():
    schema = json.loads((Path(__file__).parent / "keda.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("item", KEDA_DOCUMENTS, ids=doc_id)
def test_every_keda_object_matches_the_keda_schema(item, keda_validator):
    _, doc = item
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in keda_validator.iter_errors(doc)]
    assert not errors, errors


@pytest.mark.parametrize(
    ("trigger", "broken"),
    [
        ({"type": "redis", "metadata": {"addressFromEnv": "REDIS_ADDRESS", "listLength": "5"}}, "no listName"),
        ({"type": "redis", "metadata": {"listName": "score", "listLength": "5"}}, "no address"),
        ({"type": "redis", "metadata": {"address": "r:6379", "listName": "s", "listLength": 5}}, "number, not string"),
        (
            {
                "type": "rabbitmq",
                "metadata": {"queueName": "score", "mode": "MessageRate", "value": "5"},
                "authenticationRef": {"name": "a"},
            },
            "wrong mode",
        ),
        ({"type": "rabbitmq", "metadata": {"queueName": "score", "mode": "QueueLength", "value": "5"}}, "no auth"),
        (
            {
                "type": "aws-sqs-queue",
                "metadata": {"queueURL": "https://sqs.eu-west-1.amazonaws.com/123456789012/s", "queueLength": "5"},
                "authenticationRef": {"name": "a"},
            },
            "no region",
        ),
        ({"type": "kafka", "metadata": {}}, "unsupported type"),
    ],
)
def test_the_keda_schema_rejects_incomplete_triggers(trigger, broken, keda_validator):
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "riskapp-worker-score"}, "triggers": [trigger]},
    }
    assert not keda_validator.is_valid(scaled), broken


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_scales_the_score_workers_on_the_score_queue(overlay):
    docs = yaml_documents(K8S / overlay / "keda.yaml")
    scaled = [doc for doc in docs if doc["kind"] == "ScaledObject"]
    auths = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "TriggerAuthentication"}
    assert len(scaled) == 1
    spec = scaled[0]["spec"]
    target = base_objects("Deployment")[spec["scaleTargetRef"]["name"]]
    container = target["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "WORKER_QUEUES", "value": "score"} in container["env"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]  # >= 1: someone recovers stalled runs
    (trigger,) = spec["triggers"]
    assert trigger["authenticationRef"]["name"] in auths
    metadata = trigger["metadata"]
    queue = score_queue()
    assert queue == "riskapp-score"
    if trigger["type"] == "redis":
        assert metadata["listName"] == queue
        # addressFromEnv is read from the scaled Deployment's own environment.
        assert metadata["addressFromEnv"] in config_map()
        assert metadata["databaseIndex"] == "0"
    elif trigger["type"] == "rabbitmq":
        assert metadata["queueName"] == queue
    else:
        assert metadata["queueURL"].rsplit("/", 1)[1] == queue
        overlay_config = yaml_documents(K8S / overlay / "configmap-sqs.yaml")[0]["data"]
        assert metadata["queueURL"] == overlay_config["CELERY_SQS_QUEUE_URL_BASE"] + queue
        assert metadata["awsRegion"] == overlay_config["CELERY_SQS_REGION"]


def test_trigger_authentications_read_keys_the_secret_template_has():
    secret_keys = set(base_objects("Secret")["riskapp-secrets"]["stringData"])
    for _, doc in KEDA_DOCUMENTS:
        for ref in doc["spec"].get("secretTargetRef", []):
            assert ref["name"] == "riskapp-secrets"
            assert ref["key"] in secret_keys


def test_the_sqs_settings_give_the_queue_urls_keda_watches():
    overlay_config = yaml_documents(K8S / "sqs" / "configmap-sqs.yaml")[0]["data"]
    facts = settings_for(
        CELERY_BROKER_URL="sqs://",
        CELERY_QUEUE_PREFIX=config_map()["CELERY_QUEUE_PREFIX"],
        CELERY_SQS_QUEUE_URL_BASE=overlay_config["CELERY_SQS_QUEUE_URL_BASE"],
    )
    options = facts["transport_options"]
    assert options["region"] == overlay_config["CELERY_SQS_REGION"]
    keda = next(doc for doc in yaml_documents(K8S / "sqs" / "keda.yaml") if doc["kind"] == "ScaledObject")
    assert options["predefined_queues"]["riskapp-score"]["url"] == keda["spec"]["triggers"][0]["metadata"]["queueURL"]
    assert set(options["predefined_queues"]) == set(facts["queues_by_role"].values())


def deployments() -> dict[str, dict]:
    return base_objects("Deployment")


def test_the_deployments_the_service_needs_exist():
    assert {
        "riskapp-web",
        "riskapp-worker-default",
        "riskapp-worker-score",
        "riskapp-worker-train",
        "riskapp-beat",
        "riskapp-flower",
    } == set(deployments())


def test_every_queue_has_a_worker_and_each_worker_one_role():
    roles = {}
    for name, deployment in deployments().items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if env.get("RISKAPP_ROLE") == "worker":
                roles[name] = env["WORKER_QUEUES"]
    assert roles == {
        "riskapp-worker-default": "default",
        "riskapp-worker-score": "score",
        "riskapp-worker-train": "train",
    }


def test_the_train_worker_gets_a_gpu_and_the_cuda_image():
    spec = deployments()["riskapp-worker-train"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"] == "riskapp-gpu"
    assert {"name": "WORKER_CONCURRENCY", "value": "1"} in container["env"]
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    images = {image["name"]: image for image in kustomization["images"]}
    assert images["riskapp-gpu"]["newTag"] == "gpu" and images["riskapp-cpu"]["newTag"] == "cpu"


def test_beat_is_a_single_replica_never_rolled_over():
    spec = deployments()["riskapp-beat"]["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize(
    "name",
    [
        "riskapp-web",
        "riskapp-worker-default",
        "riskapp-worker-score",
        "riskapp-worker-train",
        "riskapp-beat",
        "riskapp-flower",
    ],
)
def test_every_pod_runs_as_a_non_root_user_without_privileges(name):
    pod = deployments()[name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod.get("initContainers", []) + pod["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert "memory" in container["resources"]["limits"]


def test_pods_that_train_score_or_import_share_the_data_volume():
    claims = base_objects("PersistentVolumeClaim")
    assert claims["riskapp-data"]["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in ("riskapp-web", "riskapp-worker-default", "riskapp-worker-score", "riskapp-worker-train"):
        pod = deployments()[name]["spec"]["template"]["spec"]
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "riskapp-data"}} in pod["volumes"]
        (mount,) = pod["containers"][0]["volumeMounts"]
        assert mount == {"name": "data", "mountPath": "/data"}
    assert config_map()["ARTIFACT_DIR"].startswith("/data/") and config_map()["MEDIA_ROOT"].startswith("/data/")


def test_the_app_waits_for_the_migration_job_of_its_release():
    job = base_objects("Job")["riskapp-migrate"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/app/docker/start/migrate"]  # migrate as the owner, then grant_app_role
    assert {"secretRef": {"name": "riskapp-migrate"}} in container["envFrom"]
    for name in (
        "riskapp-web",
        "riskapp-worker-default",
        "riskapp-worker-score",
        "riskapp-worker-train",
        "riskapp-beat",
    ):
        (init,) = deployments()[name]["spec"]["template"]["spec"]["initContainers"]
        assert "migrate --check" in " ".join(init["command"])


def test_the_web_probes_ask_as_an_allowed_host():
    container = deployments()["riskapp-web"]["spec"]["template"]["spec"]["containers"][0]
    headers = {h["name"]: h["value"] for h in container["readinessProbe"]["httpGet"]["httpHeaders"]}
    assert headers["Host"] in config_map()["ALLOWED_HOSTS"].split(",")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_config_and_secret_keys_are_settings_the_service_reads():
    # A misspelt key would be silently ignored; every one must be a documented setting or
    # one the start scripts / KEDA read.
    start_script_names = set()
    for script in (K8S.parent / "start").iterdir():
        start_script_names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", script.read_text()))
    known = env_example_names() | start_script_names | {"REDIS_ADDRESS", "REDIS_PASSWORD", "RABBITMQ_HOST"}
    keys = set(config_map()) | set(base_objects("Secret")["riskapp-secrets"]["stringData"])
    keys |= set(yaml_documents(K8S / "sqs" / "configmap-sqs.yaml")[0]["data"])
    assert keys - known == set()


def test_every_file_a_kustomization_names_exists():
    for kustomization in K8S.rglob("kustomization.yaml"):
        data = yaml.safe_load(kustomization.read_text())
        for entry in data.get("resources", []):
            assert (kustomization.parent / entry).exists(), f"{kustomization}: {entry}"
        for patch in data.get("patches", []):
            if "path" in patch:
                assert (kustomization.parent / patch["path"]).exists()
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"]
    on_disk = {p.name for p in (K8S / "base").glob("*.yaml")} - {"kustomization.yaml", "secret.template.yaml"}
    assert set(base) == on_disk


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_to_valid_manifests(overlay, keda_validator):
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S / overlay)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "ScaledObject", "TriggerAuthentication", "Job", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["kind"] in KEDA_KINDS:
            assert keda_validator.is_valid(doc)
        else:
            kubernetes_validate.validate(doc, latest_version(), strict=True)
    images = {
        c["image"] for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert {"riskapp:cpu", "riskapp:gpu"} <= images
    if overlay == "sqs":
        pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]
        assert all(pod.get("serviceAccountName") == "riskapp" for pod in pods)
        config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
        assert config["CELERY_SQS_QUEUE_URL_BASE"] and config["CELERY_QUEUE_PREFIX"] == "riskapp-"


def test_each_worker_serves_its_metrics_on_the_port_it_declares():
    for name in ("riskapp-worker-default", "riskapp-worker-score", "riskapp-worker-train"):
        (container,) = deployments()[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert container["ports"] == [{"name": "metrics", "containerPort": int(env["WORKER_METRICS_PORT"])}]


def test_only_the_migrate_job_holds_the_migration_role():
    """Every pod connects as the application role (it owns nothing, so it cannot disable
    the audit triggers); the migration role's Secret is mounted by the migrate Job alone."""
    secrets = base_objects("Secret")
    assert secrets["riskapp-secrets"]["stringData"]["DATABASE_URL"].startswith("postgres://riskapp_app:")
    assert secrets["riskapp-migrate"]["stringData"]["DATABASE_MIGRATE_URL"].startswith("postgres://riskapp_migrate:")
    for name, deployment in deployments().items():
        spec = deployment["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            assert {"secretRef": {"name": "riskapp-migrate"}} not in container.get("envFrom", []), name
