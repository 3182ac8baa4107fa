"""Object storage: artifacts, uploads and exports through an S3-compatible server
(moto's server mode, on this machine), with a real Celery worker process configured
from the environment alone; and the orphan sweep on local storage."""

import errno
import importlib
import io
import os
import time
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages

from models.artifacts import ArtifactIntegrityError
from models.synthetic import generate_all
from riskapp.env import s3_storages
from scoring import inference
from scoring.models import AuditEvent, BatchRun, ImportJob, ModelVersion, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_start
from scoring.services.exports import export_stream
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.supervisor import supervise
from scoring.services.training import model_training_start, model_version_create, model_version_train
from scoring.storage import ARTIFACTS, EXPORTS, UPLOADS, storage
from tests.conftest import wait_for
from tests.factories import UserFactory, synthetic_portfolio
from tests.scoring.api.conftest import client_for

S3_PORT = int(os.environ.get("TEST_S3_PORT", "15610"))  # in this checkout's port range
BUCKET = "riskapp-test"
ALIASES = [ARTIFACTS, UPLOADS, EXPORTS]


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{S3_PORT}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def _objects(client, prefix: str = "") -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def on_s3(s3_server, settings, tmp_path):
    """This process and its workers on the S3 server, set as an operator would (the
    environment); the local folders the storages would use point at empty folders."""
    endpoint, client = s3_server
    env = {
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_S3_ADDRESSING_STYLE": "path",
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **django_settings.STORAGES,
        **s3_storages(
            ALIASES, bucket_name=BUCKET, endpoint_url=endpoint, region_name="us-east-1", access_key="test",
            secret_key="test", addressing_style="path",
        ),
    }  # fmt: skip
    inference._loaded.clear()
    inference._deciders.clear()
    yield env, client
    inference._loaded.clear()
    inference._deciders.clear()


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_train_score_export_and_import_go_through_s3_with_hash_checked_artifacts(
    on_s3, celery_worker_factory, tmp_path
):
    env, client = on_s3
    assert storage(ARTIFACTS).__class__.__name__ == "S3Storage"
    exports_before = _files(Path(django_settings.VAR_DIR) / "exports")
    worker = celery_worker_factory(roles=("default", "score", "train"), env=env)
    portfolio = synthetic_portfolio(n=1500, seed=4, name="On S3")
    developer, validator, analyst = UserFactory(), UserFactory(), UserFactory()
    portfolio_access_grant(portfolio=portfolio, grantee=developer, role="model developer")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="senior analyst")

    # Import: the upload is an object of the bucket while the worker imports it, then gone.
    frame = generate_all(40, seed=11).applicants
    upload = ContentFile(frame.to_csv(index=False).encode(), name="more-applicants.csv")
    response = client_for(analyst).post(
        "/api/v1/imports/", {"portfolio": portfolio.pk, "kind": "applicants", "file": upload}, format="multipart"
    )
    assert response.status_code == 202, response.content[:500]
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert job.source.startswith("upload:")

    def imported():
        job.refresh_from_db()
        return job.status not in (ImportJob.STATUS_PENDING, ImportJob.STATUS_RUNNING)

    wait_for(imported, timeout=60, message=f"the import; worker log:\n{worker.log()[-3000:]}")
    assert job.status == ImportJob.STATUS_SUCCEEDED, job.message
    assert job.rows_total == 40
    assert _objects(client, "uploads/") == {}

    # Train on the worker: the model and its background are objects of the bucket.
    version = model_training_start(
        portfolio=portfolio, kind="mlp", requested_by=developer, hyperparameters={"max_epochs": 2, "batch_size": 256}
    )

    def trained():
        version.refresh_from_db()
        return version.status not in (ModelVersion.STATUS_QUEUED, ModelVersion.STATUS_TRAINING)

    wait_for(trained, timeout=120, message=f"training; worker log:\n{worker.log()[-3000:]}")
    assert version.status == ModelVersion.STATUS_TRAINED, version.error
    assert not Path(version.artifact_name).is_absolute()
    artifacts = _objects(client, "artifacts/")
    assert set(artifacts) == {f"artifacts/{version.artifact_name}", f"artifacts/{version.background_name}"}

    # Score a batch run on the worker (which loads the champion from the bucket, hash-checked).
    model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator)
    run = batch_run_start(portfolio=portfolio, chunk_size=500)

    def scored():
        run.refresh_from_db()
        return run.status in (BatchRun.STATUS_DONE, BatchRun.STATUS_FAILED)

    wait_for(scored, timeout=120, message=f"the batch run; worker log:\n{worker.log()[-3000:]}")
    assert run.status == BatchRun.STATUS_DONE
    n = portfolio.applicants.count()
    assert Score.objects.filter(run=run).count() == n

    # Export: built in the exports storage, streamed, then deleted.
    response = client_for(analyst).get(f"/api/v1/batch-runs/{run.pk}/export/?file_format=parquet")
    assert response.status_code == 200
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.num_rows == n
    assert _objects(client, "exports/") == {}

    # This process loads the version from the bucket, checked; a tampered object is refused.
    assert inference.model_load(version) is not None
    key = f"artifacts/{version.artifact_name}"
    tampered = bytearray(artifacts[key])
    tampered[len(tampered) // 2] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(tampered))
    inference._loaded.clear()
    with pytest.raises(ArtifactIntegrityError):
        inference.model_load(version)
    background_key = f"artifacts/{version.background_name}"
    client.put_object(Bucket=BUCKET, Key=background_key, Body=artifacts[background_key] + b"x")
    inference._deciders.clear()
    with pytest.raises(ArtifactIntegrityError):
        inference.decider_load(version)

    # No local path was used: the folders the local storages would have used hold nothing.
    assert _files(tmp_path / "artifacts") == [] and _files(tmp_path / "media") == []
    assert set(_files(Path(django_settings.VAR_DIR) / "exports")) <= set(exports_before)  # (other runs share var/)


@pytest.mark.django_db
def test_the_supervisor_deletes_orphan_artifacts_past_the_grace_period_only(settings, tmp_path):
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    settings.ARTIFACT_ORPHAN_GRACE_SECONDS = 3600
    store = storages[ARTIFACTS]
    portfolio = synthetic_portfolio(n=50, seed=2)
    kept = store.save("portfolio-1/v1-mlp-aaaaaaaaaaaa.pt", ContentFile(b"model"))
    store.save(f"{kept}.background.npz", ContentFile(b"background"))
    ModelVersion.objects.create(portfolio=portfolio, version=1, kind="mlp", schema=portfolio.schema, artifact_name=kept)
    # A training killed after its model file (the disk full before its background): no row names it.
    orphan = store.save("portfolio-1/v2-mlp-bbbbbbbbbbbb.pt", ContentFile(b"orphan"))
    fresh = store.save("portfolio-1/v3-mlp-cccccccccccc.pt", ContentFile(b"a training recording its row"))
    old = time.time() - 2 * 3600
    for name in (kept, f"{kept}.background.npz", orphan):
        os.utime(store.path(name), (old, old))

    assert supervise()["artifact_orphan"] == 1

    assert not store.exists(orphan)
    assert store.exists(kept) and store.exists(f"{kept}.background.npz") and store.exists(fresh)
    event = AuditEvent.objects.get(action="supervisor.artifact_orphan_delete")
    assert event.details["names"] == [orphan]
    assert supervise()["artifact_orphan"] == 0  # idempotent
    settings.ARTIFACT_ORPHAN_GRACE_SECONDS = 0  # off: a store shared by several databases
    os.utime(store.path(fresh), (old, old))
    assert supervise()["artifact_orphan"] == 0 and store.exists(fresh)


class DiskFullOnBackground(FileSystemStorage):
    """An artifacts storage whose disk fills up after the model file: the background's write fails."""

    def _save(self, name, content):
        if name.endswith(".background.npz"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return super()._save(name, content)


@pytest.mark.django_db
def test_a_full_disk_between_the_model_file_and_its_background_leaves_no_orphan(settings, tmp_path):
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **django_settings.STORAGES,
        ARTIFACTS: {"BACKEND": f"{__name__}.DiskFullOnBackground", "OPTIONS": {"location": str(root)}},
    }
    portfolio = synthetic_portfolio(n=400, seed=3)
    version = model_version_create(
        portfolio=portfolio, kind="mlp", requested_by=UserFactory(), hyperparameters={"max_epochs": 1}
    )
    with pytest.raises(OSError, match="No space left"):
        model_version_train(model_version_id=version.pk)
    version.refresh_from_db()
    assert version.status == ModelVersion.STATUS_FAILED and "No space left" in version.error
    assert version.artifact_name == ""
    assert _files(root) == []  # the model file written first was deleted again


@pytest.mark.django_db
def test_the_migration_turns_paths_under_the_artifact_dir_into_storage_names_and_back(settings, tmp_path):
    migration = importlib.import_module("scoring.migrations.0026_artifact_names_in_storage")
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    portfolio = synthetic_portfolio(n=20, seed=1)
    rows = {
        str(tmp_path / "artifacts" / "portfolio-7" / "v1-mlp-0123456789ab.pt"): "portfolio-7/v1-mlp-0123456789ab.pt",
        "/elsewhere/moved/portfolio-7/v2-mlp-ba9876543210.pt": "portfolio-7/v2-mlp-ba9876543210.pt",
        "": "",
    }
    versions = [
        ModelVersion.objects.create(portfolio=portfolio, version=i + 1, kind="mlp", schema=portfolio.schema,
                                    artifact_name=path)
        for i, path in enumerate(rows)
    ]  # fmt: skip

    migration.paths_to_names(apps, None)
    assert [ModelVersion.objects.get(pk=v.pk).artifact_name for v in versions] == list(rows.values())
    migration.paths_to_names(apps, None)  # names stay names
    assert [ModelVersion.objects.get(pk=v.pk).artifact_name for v in versions] == list(rows.values())

    migration.names_to_paths(apps, None)
    restored = [ModelVersion.objects.get(pk=v.pk).artifact_name for v in versions]
    root = (tmp_path / "artifacts").resolve()
    assert restored == [
        str(root / "portfolio-7/v1-mlp-0123456789ab.pt"),
        str(root / "portfolio-7/v2-mlp-ba9876543210.pt"),
        "",
    ]


def test_an_export_is_deleted_when_its_response_closes_even_unread(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    store = storages[EXPORTS]
    name = store.save("run-1-unread.parquet", ContentFile(b"scores"))
    export_stream(name).close()  # the client went away before the first byte
    assert not store.exists(name)
    name = store.save("run-1-read.parquet", ContentFile(b"scores"))
    stream = export_stream(name)
    assert b"".join(stream) == b"scores"
    stream.close()
    assert not store.exists(name) and _files(tmp_path / "exports") == []
