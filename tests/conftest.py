"""Shared fixtures: the fixed cast of users and a real Celery worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Tests render pages without running collectstatic first: no manifest needed."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_process_cache():
    """Each test starts with an empty per-process cache (scoring/caches.py): a test's
    rolled-back transaction can take the cache version back to a number this process
    already cached other data under, which production (where versions only grow) never does."""
    from scoring.caches import process_cache
    from scoring.services.policy import policy_cache_clear

    process_cache.clear()
    # Policy versions are cached by id (immutable, never deleted); a rolled-back test reuses ids.
    policy_cache_clear()


@pytest.fixture(autouse=True)
def _fresh_denied_flood(settings):
    """Every test client request comes from 127.0.0.1: each test starts with no flood
    on record, and an allowance no ordinary test reaches (tests/scoring/test_flood.py
    sets its own)."""
    from scoring.middleware import denied_flood

    settings.AUDIT_DENIED_BURST = 100_000
    denied_flood.reset()
    yield
    denied_flood.reset()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, minus the audit log's append-only triggers.

    Between transactional tests Django empties every table (TRUNCATE/DELETE), which
    the triggers refuse. They are checked to be there after the migrations, then
    dropped for the session; the tests of the triggers reinstall them inside their
    own transaction (``scoring.audit.append_only_install``), which rolls back.
    """
    from scoring.audit import append_only_expected, append_only_installed, append_only_uninstall

    with django_db_blocker.unblock():
        missing = append_only_expected() - append_only_installed()
        assert not missing, f"the migrations did not install the audit triggers {sorted(missing)}"
        append_only_uninstall()


@pytest.fixture(autouse=True)
def _own_audit_head_file(settings, tmp_path):
    """Each test's database starts empty (it rolls back), so its chain's signed heads kept
    outside the database (settings.AUDIT_HEAD_FILE) go to a file of its own."""
    settings.AUDIT_HEAD_FILE = tmp_path / "audit-heads.jsonl"


@pytest.fixture
def append_only(db):
    """The audit log's append-only triggers, installed inside the test's transaction
    (which rolls them back; the session's database has them dropped, see
    ``django_db_setup``). For tests that need a protected log: /readyz, verify."""
    from scoring.audit import append_only_install

    append_only_install()


@pytest.fixture(autouse=True, scope="session")
def _own_artifact_dir(tmp_path_factory):
    """Each test run keeps model artifacts in its own folder. Concurrent runs on one checkout
    each start from a fresh database, so they number portfolios and versions alike and would
    overwrite each other's var/artifacts/portfolio-1/v1-mlp.pt (a SHA-256 mismatch on load)."""
    original = django_settings.ARTIFACT_DIR
    django_settings.ARTIFACT_DIR = tmp_path_factory.mktemp("artifacts")
    yield
    django_settings.ARTIFACT_DIR = original


def database_url_for_subprocess() -> str:
    """The URL of the database this test run uses (the test database), for a child process."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class WorkerProcess:
    """A real ``celery worker`` child process bound to the test database and broker."""

    def __init__(
        self,
        *,
        queues: list[str],
        concurrency: int = 1,
        name: str | None = None,
        log_dir: Path,
        env: dict | None = None,
    ):
        self.extra_env = env or {}
        self.queues = queues
        self.concurrency = concurrency
        self.name = name or f"test-{uuid.uuid4().hex[:8]}"
        self.log_path = log_dir / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> WorkerProcess:
        env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "PYTHONUNBUFFERED": "1", **self.extra_env}
        env["VAR_DIR"] = str(django_settings.VAR_DIR)
        env["ARTIFACT_DIR"] = str(django_settings.ARTIFACT_DIR)  # a model it trains lands where the test looks
        env["CELERY_QUEUE_PREFIX"] = django_settings.CELERY_QUEUE_PREFIX
        if django_settings.CELERY_BROKER_URL:
            env["CELERY_BROKER_URL"] = django_settings.CELERY_BROKER_URL
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "riskapp", "worker",
                "-Q", ",".join(self.queues), "--concurrency", str(self.concurrency),
                "-n", f"{self.name}@%h", "-l", "info",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # so a test can kill the whole worker (parent and pool) at once
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if " ready." in self.log():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        import signal

        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def celery_worker_factory(transactional_db, tmp_path):
    """Start real worker processes; they are stopped before the database is flushed."""
    workers: list[WorkerProcess] = []

    def start(*, roles=("default", "score", "train"), concurrency: int = 1, env: dict | None = None) -> WorkerProcess:
        queues = [django_settings.CELERY_QUEUES_BY_ROLE[role] for role in roles]
        worker = WorkerProcess(queues=queues, concurrency=concurrency, log_dir=tmp_path, env=env).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def celery_worker(celery_worker_factory):
    return celery_worker_factory()


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# The rows data migrations seed (beat schedules, the cache-version row), in migration order.
# Every seeding function is idempotent (get_or_create / conditional update).
_SEEDS = (
    ("0006_default_schedules", "create"),
    ("0010_audit_checkpoint_schedule", "create"),
    ("0014_cacheversion", "first_row"),
    ("0015_supervisor_leases", "schedule_supervisor"),
    ("0016_audit_sealer", "schedule_create"),
)


def flush_database() -> None:
    """Empty the test database the way a module-scoped world must after committing its rows,
    then seed again what migrations seeded: a bare ``flush`` in the middle of the suite left
    the ordinary tests after it without the nightly schedule (and the other seeded rows)."""
    import importlib

    from django.apps import apps
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection

    from scoring.caches import process_cache
    from scoring.services.policy import policy_cache_clear

    call_command("flush", interactive=False, verbosity=0)
    ContentType.objects.clear_cache()
    # Ids start again after a flush: a module world set up next (before any test's own
    # cache reset) must not read this module's policies or portfolios by a reused id.
    process_cache.clear()
    policy_cache_clear()
    for module, function in _SEEDS:
        seed = getattr(importlib.import_module(f"scoring.migrations.{module}"), function)
        seed(apps, connection.schema_editor())
    # The seeds run here on the live models, whose saves the audit net records (schedule
    # changes are audit events); a migration's historical models record nothing. Those
    # events would be committed leftovers in front of every later test that reads the
    # chain from seq 1 (the audit tables have no append-only triggers in the test session).
    from scoring.models import AuditCheckpoint, AuditEvent, AuditSeal

    AuditEvent.objects.all().delete()
    AuditSeal.objects.all().delete()
    AuditCheckpoint.objects.all().delete()
