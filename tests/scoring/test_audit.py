"""The audit log: the hash chain, its sealer and signed checkpoints, the append-only
triggers, verification, and the events of sign-in and denied requests.

tests/scoring/test_audit_seal.py has the sealer's own tests (batches, Merkle roots,
the window, a deleted tail, dropped triggers, the database roles)."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import Client

from scoring.audit import (
    GENESIS_HASH,
    append_only_install,
    append_only_uninstall,
    audit_checkpoint_create,
    audit_log_verify,
    audit_record,
    audit_seal,
    event_hash,
)
from scoring.models import AuditCheckpoint, AuditEvent, AuditSeal
from tests.factories import UserFactory

PG = connection.vendor == "postgresql"
only_postgresql = pytest.mark.skipif(not PG, reason="PostgreSQL-only behaviour (runs in the PostgreSQL CI run)")


AUDIT_TABLES = ("scoring_auditevent", "scoring_auditcheckpoint", "scoring_auditseal")


def events(n: int, **kwargs) -> list[AuditEvent]:
    """n events, sealed, as stored (in chain order)."""
    written = [
        audit_record(action="applicant.view", object_type="applicant", object_ids=[i], **kwargs) for i in range(n)
    ]
    audit_seal()
    return list(AuditEvent.objects.filter(pk__in=[e.pk for e in written]).order_by("seq"))


def tamper(sql: str, params=()) -> None:
    """Change the audit table behind the application's back, the way a database
    superuser could: with the triggers out of the way."""
    with connection.cursor() as cursor:
        if PG:
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            cursor.execute(sql, params)
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        else:
            append_only_uninstall()
            cursor.execute(sql, params)
            append_only_install()


# --- The chain ------------------------------------------------------------------
@pytest.mark.django_db
def test_it_chains_each_event_to_the_one_before():
    user = UserFactory(username="alice")
    first = audit_record(action="login", actor=user)
    second = audit_record(action="applicant.view", actor=user, portfolio_id=3, object_type="applicant", object_ids=[7])
    assert first.seq is None and first.hash is None  # written unsealed, without a lock
    audit_seal()
    first, second = AuditEvent.objects.get(pk=first.pk), AuditEvent.objects.get(pk=second.pk)
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    stored = AuditEvent.objects.get(pk=second.pk)
    assert (stored.actor_id, stored.actor_username, stored.object_ids) == (user.pk, "alice", [7])
    assert event_hash(stored) == stored.hash


@pytest.mark.django_db
def test_it_hashes_values_as_the_database_returns_them():
    event = audit_record(action="applicant.list", details={"rows": 3, "big": 1e16, "nan": float("nan"), "x": "a\x00b"})
    audit_seal()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.details == {"rows": 3, "big": 10**16, "nan": None, "x": "a\ufffdb"}
    assert event_hash(stored) == stored.hash


@pytest.mark.django_db
def test_it_refuses_an_unknown_outcome():
    with pytest.raises(ValueError):
        audit_record(action="login", outcome="maybe")


@pytest.mark.django_db
def test_an_event_of_a_rolled_back_action_rolls_back_with_it_and_the_chain_stays_whole():
    audit_record(action="login")
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="model.approve")
        raise RuntimeError("the approval failed")
    audit_record(action="logout")
    assert audit_log_verify().ok  # seals first
    assert list(AuditEvent.objects.order_by("seq").values_list("action", "seq")) == [("login", 1), ("logout", 2)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain():
    """Eight threads, each with its own database connection, append at once while a
    sealer seals: no writer waits on a chain lock, and every sealed event names its
    real predecessor (one sealer at a time: an advisory lock on PostgreSQL, the
    IMMEDIATE write lock on SQLite)."""
    writers, per_writer = 8, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers + 1)
    done = threading.Event()

    def seal() -> None:
        try:
            start.wait()
            while not done.is_set():
                audit_seal(batch_size=7)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                audit_record(action="applicant.view", object_ids=[n, i])
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    sealer = threading.Thread(target=seal)
    for thread in [*threads, sealer]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    sealer.join()
    assert not errors, errors
    result = audit_log_verify(chunk_size=7)
    assert result.ok, result.problem
    assert result.events_checked == writers * per_writer
    seqs = sorted(AuditEvent.objects.values_list("seq", flat=True))
    assert seqs == list(range(1, writers * per_writer + 1))
    assert AuditSeal.objects.count() >= writers * per_writer // 7


# --- Checkpoints and verification --------------------------------------------------
@pytest.mark.django_db
def test_a_clean_log_with_a_checkpoint_verifies():
    events(5)
    checkpoint = audit_checkpoint_create()
    assert checkpoint is not None and checkpoint.events == 5
    assert audit_checkpoint_create() is None  # nothing new to sign
    audit_record(action="logout")
    result = audit_log_verify(chunk_size=2)
    assert result.ok, result.problem
    assert (result.events_checked, result.checkpoints_verified) == (6, 1)


@pytest.mark.django_db
def test_the_command_reports_counts_and_signs_the_verified_head(append_only, capsys):
    events(4)
    call_command("verify_audit_log")
    out = capsys.readouterr().out
    assert "4 events checked, 1 seals and 0 checkpoints verified" in out
    assert AuditCheckpoint.objects.get().events == 4
    call_command("verify_audit_log", "--no-checkpoint")
    assert "4 events checked, 1 seals and 1 checkpoints verified" in capsys.readouterr().out
    assert AuditCheckpoint.objects.count() == 1


@pytest.mark.django_db
def test_the_checkpoint_task_signs_the_head_and_is_scheduled_every_ten_minutes():
    from django_celery_beat.models import PeriodicTask

    from scoring.tasks import audit_checkpoint

    last = events(3)[-1]
    assert audit_checkpoint() == last.pk
    schedule = PeriodicTask.objects.get(task="scoring.tasks.audit_checkpoint")
    assert (schedule.interval.every, schedule.interval.period) == (10, "minutes")


def verify_fails_at(event_id: int, what: str) -> None:
    result = audit_log_verify()
    assert not result.ok
    assert result.broken_id == event_id, result.problem
    assert what in result.problem
    with pytest.raises(CommandError, match=f"BROKEN at event {event_id}"):
        call_command("verify_audit_log", "--no-checkpoint")


@pytest.mark.django_db
def test_an_edited_event_is_found(append_only):
    written = events(5)
    tamper("UPDATE scoring_auditevent SET object_ids = %s WHERE id = %s", ["[99]", written[2].pk])
    verify_fails_at(written[2].pk, "hash mismatch")


@pytest.mark.django_db
def test_an_edited_event_with_a_recomputed_hash_breaks_the_next_link(append_only):
    written = events(5)
    victim = written[2]
    victim.object_ids = [99]
    tamper(
        "UPDATE scoring_auditevent SET object_ids = %s, hash = %s WHERE id = %s",
        ["[99]", event_hash(victim), victim.pk],
    )
    verify_fails_at(written[3].pk, "prev_hash mismatch")


@pytest.mark.django_db
def test_a_deleted_event_is_a_gap(append_only):
    written = events(5)
    tamper("DELETE FROM scoring_auditevent WHERE id = %s", [written[2].pk])
    verify_fails_at(written[3].pk, "gap")


@pytest.mark.django_db
def test_reordered_events_are_found(append_only):
    """Sealed events hash their row id too: swapping two ids breaks a hash."""
    written = events(5)
    a, b = written[1].pk, written[2].pk
    spare = written[-1].pk + 1000
    tamper("UPDATE scoring_auditevent SET id = %s WHERE id = %s", [spare, a])
    tamper("UPDATE scoring_auditevent SET id = %s WHERE id = %s", [a, b])
    tamper("UPDATE scoring_auditevent SET id = %s WHERE id = %s", [b, spare])
    verify_fails_at(b, "hash mismatch")


@pytest.mark.django_db
def test_a_deleted_tail_is_found_by_the_checkpoint(append_only):
    written = events(5)
    audit_checkpoint_create()
    tamper("DELETE FROM scoring_auditevent WHERE id >= %s", [written[3].pk])
    verify_fails_at(written[4].pk, "is missing")


@pytest.mark.django_db
def test_a_rewritten_chain_is_found_by_the_signed_checkpoint(append_only):
    """An attacker who edits an event and recomputes every hash after it leaves a
    consistent chain, but cannot re-sign the checkpoint."""
    written = events(5)
    audit_checkpoint_create()
    prev = written[1].hash
    for event in written[2:]:
        if event is written[2]:
            event.object_ids = [99]
        event.prev_hash = prev
        event.hash = event_hash(event)
        prev = event.hash
        tamper(
            "UPDATE scoring_auditevent SET object_ids = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [f"[{event.object_ids[0]}]", event.prev_hash, event.hash, event.pk],
        )
    verify_fails_at(written[4].pk, "checkpoint")


@pytest.mark.django_db
def test_a_forged_checkpoint_is_found(append_only):
    events(3)
    checkpoint = audit_checkpoint_create()
    tamper("UPDATE scoring_auditcheckpoint SET events = 2 WHERE id = %s", [checkpoint.pk])
    verify_fails_at(checkpoint.last_event_id, "signature mismatch")


@pytest.mark.django_db
def test_a_checkpoint_under_an_unknown_key_is_found(append_only, settings):
    events(2)
    audit_checkpoint_create()
    settings.AUDIT_SIGNING_KEY = "another-key-another-key-another-key-0123"
    assert "unknown key" in audit_log_verify().problem


@pytest.mark.django_db
def test_an_old_signing_key_still_verifies_its_checkpoints(settings):
    events(2)
    audit_checkpoint_create()
    old = settings.AUDIT_SIGNING_KEY
    settings.AUDIT_SIGNING_KEY = "another-key-another-key-another-key-0123"
    settings.AUDIT_SIGNING_OLD_KEYS = [old]
    events(1)
    audit_checkpoint_create()
    result = audit_log_verify()
    assert result.ok and result.checkpoints_verified == 2


# --- Append-only at the database ------------------------------------------------------
@pytest.mark.django_db
def test_the_migrations_install_the_append_only_triggers(append_only):
    # tests/conftest.py asserts the migrated database had them before dropping them for the
    # session; here: the same SQL installs every expected trigger.
    from scoring.audit import append_only_expected, append_only_installed

    assert append_only_installed() == append_only_expected()


@pytest.mark.django_db
@pytest.mark.parametrize("model", [AuditEvent, AuditCheckpoint, AuditSeal])
def test_the_application_cannot_update_or_delete_audit_rows(append_only, model):
    events(2)
    audit_checkpoint_create()
    row = model.objects.first()
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
        if model is AuditEvent:
            model.objects.filter(pk=row.pk).update(action="edited")
        else:
            model.objects.filter(pk=row.pk).update(key_id="edited")
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
        model.objects.filter(pk=row.pk).delete()
    with pytest.raises((IntegrityError, DatabaseError)), transaction.atomic():
        row.delete()
    assert model.objects.filter(pk=row.pk).exists()


@only_postgresql
@pytest.mark.django_db
def test_postgresql_refuses_truncate_of_the_audit_tables(append_only):
    events(1)
    for table in AUDIT_TABLES:
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {table}")
    assert AuditEvent.objects.count() == 1 and AuditSeal.objects.count() == 1


# --- Events recorded by the web layer ------------------------------------------------
@pytest.mark.django_db
def test_sign_in_failed_sign_in_and_sign_out_are_recorded_without_the_password():
    UserFactory(username="bob")
    client = Client()
    client.post("/admin/login/", {"username": "bob", "password": "wrong-password-123"})
    assert client.login(username="bob", password="a-long-test-password")
    client.logout()
    rows = list(AuditEvent.objects.order_by("seq").values("action", "outcome", "actor_username", "details"))
    assert [(r["action"], r["outcome"], r["actor_username"]) for r in rows] == [
        ("login_failed", "failure", "bob"),
        ("login", "success", "bob"),
        ("logout", "success", "bob"),
    ]
    assert "wrong-password-123" not in str(rows)


@pytest.mark.django_db
def test_denied_api_requests_are_recorded_with_path_method_and_status():
    client = Client()
    response = client.get("/api/v1/portfolios/", HTTP_X_REQUEST_ID="client-req-0001")
    assert response.status_code in (401, 403)
    assert response["X-Request-ID"] == "client-req-0001"
    event = AuditEvent.objects.get(action="request.denied")
    assert event.outcome == "denied"
    assert event.details == {"path": "/api/v1/portfolios/", "method": "GET", "status": response.status_code}
    assert event.request_id == "client-req-0001"
    assert event.ip == "127.0.0.1"


@pytest.mark.django_db
def test_an_insane_request_id_is_replaced_and_allowed_requests_are_not_recorded_as_denied():
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="bad id\r\nSet-Cookie: x")
    assert len(response["X-Request-ID"]) == 32 and " " not in response["X-Request-ID"]
    assert not AuditEvent.objects.filter(action="request.denied").exists()
