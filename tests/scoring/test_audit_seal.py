"""The audit log's sealer, its window, the signed heads outside the database, the
append-only triggers as verify and /readyz see them, and the database roles.

Each finding of the security review has its test here: a tail deleted after a
checkpoint (events 1050-1052 after the checkpoint at 1049, in miniature), a dropped
or disabled trigger, the application role disabling the trigger, the audit-signing
schedule disabled without an event."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from scoring.audit import (
    audit_checkpoint_create,
    audit_log_verify,
    audit_record,
    audit_seal,
    event_hash,
    merkle_root,
)
from scoring.models import AuditCheckpoint, AuditEvent, AuditSeal
from tests.factories import UserFactory
from tests.scoring.test_audit import PG, events, only_postgresql, tamper


def seal_schedule() -> PeriodicTask:
    return PeriodicTask.objects.get(task="scoring.tasks.audit_seal")


# --- Writers and the sealer -----------------------------------------------------------
@pytest.mark.django_db
def test_a_writer_issues_one_insert_and_takes_no_lock():
    with CaptureQueriesContext(connection) as queries:
        event = audit_record(action="applicant.view", object_ids=[1])
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 1 and statements[0].startswith("INSERT"), statements
    assert "advisory" not in statements[0]
    assert event.seq is None and AuditEvent.objects.get(pk=event.pk).seq is None


@pytest.mark.django_db
def test_the_sealer_seals_in_batches_each_signed_with_a_merkle_root_chained_to_the_one_before():
    written = [audit_record(action="applicant.view", object_ids=[i]) for i in range(7)]
    assert audit_seal(batch_size=3) == 7
    seals = list(AuditSeal.objects.order_by("last_seq"))
    assert [(s.first_seq, s.last_seq) for s in seals] == [(1, 3), (4, 6), (7, 7)]
    assert [s.prev_hash for s in seals[1:]] == [s.hash for s in seals[:-1]]
    for seal in seals:
        members = AuditEvent.objects.filter(seal=seal.pk).order_by("seq")
        assert seal.merkle_root == merkle_root([e.hash for e in members])
    # In id order, the order they were written (all committed before the sealer ran).
    assert list(AuditEvent.objects.order_by("seq").values_list("pk", flat=True)) == [e.pk for e in written]
    assert audit_seal() == 0  # nothing new
    result = audit_log_verify()
    assert result.ok, result.problem
    assert (result.events_checked, result.seals_verified) == (7, 3)


@pytest.mark.django_db
def test_the_seal_task_is_scheduled_every_five_seconds_and_dropped_when_late():
    from scoring.tasks import audit_seal as seal_task

    audit_record(action="login")
    assert seal_task() == 1
    schedule = seal_schedule()
    assert (schedule.interval.every, schedule.interval.period, schedule.expire_seconds) == (5, "seconds", 5)
    assert schedule.enabled


@only_postgresql
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_after_a_later_one_was_sealed_joins_the_next_batch():
    """A long transaction holds an early id; the sealer does not wait for it."""
    inserted, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                audit_record(action="model.train", object_ids=["slow"])
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert inserted.wait(10)
    fast = audit_record(action="login")
    assert audit_seal() == 1
    release.set()
    thread.join()
    assert audit_seal() == 1
    slow = AuditEvent.objects.get(action="model.train")
    assert slow.pk < fast.pk and AuditEvent.objects.get(pk=fast.pk).seq == 1 and slow.seq == 2
    assert audit_log_verify().ok


# --- Tampering found through the seals and the signed heads ------------------------------
@pytest.mark.django_db
def test_a_batch_rewritten_without_any_checkpoint_is_found_by_its_merkle_root(append_only, settings):
    settings.AUDIT_HEAD_FILE = None  # no signed head outside the database: the seal alone
    written = events(3)
    prev = written[0].hash
    for event in written[1:]:
        if event is written[1]:
            event.object_ids = [99]
        event.prev_hash = prev
        event.hash = prev = event_hash(event)
        tamper(
            "UPDATE scoring_auditevent SET object_ids = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [json.dumps(event.object_ids), event.prev_hash, event.hash, event.pk],
        )
    result = audit_log_verify()
    assert not result.ok and result.broken_id == written[2].pk
    assert "Merkle root mismatch" in result.problem


@pytest.mark.django_db
def test_events_deleted_under_their_seal_are_found(append_only, settings):
    settings.AUDIT_HEAD_FILE = None
    events(3)
    events(3)
    tamper("DELETE FROM scoring_auditevent WHERE seq > 3")
    result = audit_log_verify()
    assert not result.ok and "covers seq 4-6, the chain ends at seq 3" in result.problem


@pytest.mark.django_db
def test_a_tail_deleted_after_a_checkpoint_is_found_by_the_head_outside_the_database(
    append_only, settings, django_capture_on_commit_callbacks
):
    """The finding: with a checkpoint at event 1049, events 1050-1052 appended and then
    deleted (with their seal, the way replica mode allows) -> verify said OK and signed a
    new checkpoint over the truncated chain."""
    events(5)
    checkpoint = audit_checkpoint_create()
    assert checkpoint is not None and checkpoint.events == 5
    with django_capture_on_commit_callbacks(execute=True):  # the seal's commit appends its head
        tail = events(3)
    assert [e.seq for e in tail] == [6, 7, 8]
    assert json.loads(settings.AUDIT_HEAD_FILE.read_text().splitlines()[-1])["events"] == 8
    tamper("DELETE FROM scoring_auditevent WHERE seq > 5")
    tamper("DELETE FROM scoring_auditseal WHERE last_seq > 5")
    result = audit_log_verify(seal=False)
    assert not result.ok, "the truncated chain verified"
    assert result.broken_id == tail[-1].pk
    assert "seq 8) is missing; the chain ends at seq 5" in result.problem
    with pytest.raises(CommandError, match="tail was removed"):
        call_command("verify_audit_log")
    assert list(AuditCheckpoint.objects.values_list("events", flat=True)) == [5]  # nothing signed over it


@pytest.mark.django_db
def test_a_forged_head_outside_the_database_is_found(append_only, settings):
    events(2)
    settings.AUDIT_HEAD_FILE.write_text(
        json.dumps({"events": 2, "last_event_id": 1, "last_event_hash": "0" * 64, "key_id": "x", "signature": "y"})
        + "\n"
    )
    assert "head file" in audit_log_verify().problem


@pytest.mark.django_db(transaction=True)
def test_the_sealer_appends_each_signed_head_to_the_file_outside_the_database(settings):
    events(2)
    events(1)
    lines = [json.loads(line) for line in settings.AUDIT_HEAD_FILE.read_text().splitlines()]
    assert [(line["kind"], line["events"]) for line in lines] == [("seal", 2), ("seal", 3)]
    assert audit_log_verify().head_file_events == 3


# --- The window ----------------------------------------------------------------------------
def _age(event: AuditEvent, seconds: int) -> None:
    tamper(
        "UPDATE scoring_auditevent SET occurred_at = %s WHERE id = %s",
        [timezone.now() - timedelta(seconds=seconds), event.pk],
    )


@pytest.mark.django_db
def test_an_event_unsealed_beyond_the_window_fails_verify_and_readyz(append_only, settings):
    settings.AUDIT_SEAL_WINDOW_SECONDS = 30
    events(1)
    recent = audit_record(action="applicant.view")
    assert audit_log_verify(seal=False).ok  # unsealed, but within the window
    _age(recent, 31)
    result = audit_log_verify(seal=False)
    assert not result.ok and "1 events unsealed for longer than 30 s" in result.problem
    with pytest.raises(CommandError, match="the sealer is not running"):
        call_command("verify_audit_log", "--no-seal")
    status, body = _readyz_audit()
    assert status == 503 and "audit" in body["failed"]
    call_command("verify_audit_log")  # seals it, then verifies
    assert _readyz_audit()[1]["audit"]["ok"] is True


# --- The triggers, as verify and /readyz see them -------------------------------------------
@pytest.mark.django_db
def test_the_trigger_lets_the_sealer_fill_an_unsealed_event_once_and_nothing_else(append_only):
    event = audit_record(action="applicant.view")
    refused = (
        {"action": "edited"},
        {"seq": 1},  # without a hash and a seal
        {"seq": 1, "prev_hash": "0" * 64, "hash": "f" * 64, "seal": 1, "action": "edited"},
    )
    for change in refused:
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(**change)
    audit_seal()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(seq=5, prev_hash="0" * 64, hash="e" * 64, seal=9)
    assert audit_log_verify().ok


def _readyz_audit() -> tuple[int, dict]:
    """/readyz's status (anyone may ask) and the readiness details (which /readyz shows
    to authorised callers only)."""
    from scoring.services.health import readiness

    return Client().get("/readyz").status_code, readiness()[1]


@pytest.mark.django_db
def test_a_dropped_trigger_fails_verify_and_readyz(append_only):
    events(2)
    assert _readyz_audit()[1]["audit"] == {"ok": True, "problems": []}
    name = "scoring_auditevent_append_only" if PG else "scoring_auditevent_no_delete"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {name}" + (" ON scoring_auditevent" if PG else ""))
    with pytest.raises(CommandError, match=f"UNPROTECTED: append-only trigger {name} is missing"):
        call_command("verify_audit_log")
    status, body = _readyz_audit()
    assert status == 503 and "audit" in body["failed"]
    assert f"append-only trigger {name} is missing or disabled" in body["audit"]["problems"]


@only_postgresql
@pytest.mark.django_db
def test_a_disabled_trigger_or_a_replaced_function_fails_verify(append_only):
    events(1)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE scoring_auditseal DISABLE TRIGGER scoring_auditseal_no_truncate")
    with pytest.raises(CommandError, match="scoring_auditseal_no_truncate is missing or disabled"):
        call_command("verify_audit_log")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE scoring_auditseal ENABLE TRIGGER scoring_auditseal_no_truncate")
        cursor.execute(
            "CREATE OR REPLACE FUNCTION scoring_audit_seal_only() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN NEW; END; $$"
        )
    with pytest.raises(CommandError, match=r"scoring_audit_seal_only\(\) was replaced"):
        call_command("verify_audit_log")
    assert _readyz_audit()[0] == 503


# --- The schedules the log depends on ----------------------------------------------------
@pytest.mark.django_db
def test_disabling_the_seal_schedule_in_the_admin_is_an_audit_event(django_capture_on_commit_callbacks, append_only):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    schedule = seal_schedule()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/django_celery_beat/periodictask/",
            {"action": "disable_tasks", "_selected_action": [schedule.pk]},
        )
    assert response.status_code == 302
    (event,) = AuditEvent.objects.filter(action="audit.schedule_disabled")
    assert (event.actor_username, event.object_ids, event.details["task"]) == (
        "root",
        [schedule.pk],
        "scoring.tasks.audit_seal",
    )
    assert "the audit seal schedule is disabled or missing" in _readyz_audit()[1]["audit"]["problems"]
    with django_capture_on_commit_callbacks(execute=True):
        PeriodicTasks.update_changed()  # any later change of another schedule: not recorded twice
    assert AuditEvent.objects.filter(action="audit.schedule_disabled").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        schedule.refresh_from_db()
        schedule.enabled = True
        schedule.save()
    assert AuditEvent.objects.filter(action="audit.schedule_enabled").count() == 1


@pytest.mark.django_db
def test_deleting_the_checkpoint_schedule_is_an_audit_event(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        PeriodicTask.objects.filter(task="scoring.tasks.audit_checkpoint").delete()
    assert AuditEvent.objects.filter(action="audit.schedule_deleted").count() == 1


# --- Least privilege: the application role -------------------------------------------------
@only_postgresql
@pytest.mark.django_db
def test_the_application_role_cannot_disable_drop_or_bypass_the_trigger(append_only):
    """The role the app connects as (set up by ``grant_app_role``) owns nothing: every way
    around the trigger is refused, while it can still write, seal and verify."""
    from scoring.services.database_roles import DatabaseRoleError, app_role_grant, connection_privilege_problems

    role = f"riskapp_audit_probe_{uuid.uuid4().hex[:8]}"  # created and dropped with the test's transaction
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
    app_role_grant(role=role)
    events(2)
    audit_checkpoint_create()

    def as_app(sql: str) -> None:
        with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: its rollback resets the role
            cursor.execute(f"SET ROLE {role}")
            cursor.execute(sql)

    attempts = [
        "ALTER TABLE scoring_auditevent DISABLE TRIGGER scoring_auditevent_append_only",
        "ALTER TABLE scoring_auditevent DISABLE TRIGGER USER",
        "DROP TRIGGER scoring_auditevent_append_only ON scoring_auditevent",
        "CREATE OR REPLACE FUNCTION scoring_audit_seal_only() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN NEW; END; $$",
        "SET session_replication_role = replica",
        "UPDATE scoring_auditevent SET action = 'edited'",
        "DELETE FROM scoring_auditevent",
        "TRUNCATE scoring_auditevent",
        "DELETE FROM scoring_auditcheckpoint",
        "UPDATE scoring_auditcheckpoint SET events = 1",
        "DELETE FROM scoring_auditseal",
        "ALTER TABLE scoring_auditevent OWNER TO CURRENT_USER",
    ]
    for sql in attempts:
        with pytest.raises(DatabaseError, match=r"must be owner|permission denied"):
            as_app(sql)

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {role}")
        assert connection_privilege_problems() == []
        audit_record(action="applicant.view")
        assert audit_seal() == 1  # the sealer's columns it may fill
        assert audit_checkpoint_create() is not None
        assert audit_log_verify().ok
        cursor.execute("RESET ROLE")
    assert connection_privilege_problems()  # the test's own connection is a superuser
    with pytest.raises(DatabaseRoleError, match="superuser"):
        app_role_grant(role=connection.settings_dict["USER"] or "postgres")
