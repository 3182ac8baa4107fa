"""The audit log: an append-only, hash-chained, sealed record of who did what.

``audit_record`` is the only writer: one INSERT, no lock, inside the caller's
transaction when one is open (an action and its event commit or roll back
together); ``audit_record_with`` writes a new row and its event together (one
statement on PostgreSQL: a real-time decision). A sealer (``audit_seal``: a beat task every 5 seconds, and before every
verification) then gives the new events, in batches and in id order, their
position in the chain (``seq``, 1, 2, 3, ...), the hash of the event before
(``prev_hash``) and their own ``hash = sha256(prev_hash + canonical JSON of the
fields)``, and writes one ``AuditSeal`` per batch: the Merkle root of its events'
hashes, chained to the previous seal and signed with an HMAC key the database
never holds. Removing, editing or reordering a sealed event breaks the chain
(``manage.py verify_audit_log`` finds the first broken link).

The database refuses UPDATE (except sealing an unsealed event, once), DELETE and
TRUNCATE on the audit tables (triggers, migration 0016), and the application's
database role is not their owner, so it cannot disable them (``grant_app_role``).
Checkpoints sign the count and head of the chain, in the database and in a file
outside it (``scoring.audit.signing`` says why both), so a deleted tail is caught.

The window: an event not sealed yet is protected by the trigger only; verify and
``/readyz`` fail when one stays unsealed longer than AUDIT_SEAL_WINDOW_SECONDS.

Never pass PII (names, national ids, contact data) in ``details``: ids only.
"""

from scoring.audit.events import (
    GENESIS_HASH,
    OUTCOMES,
    audit_event_new,
    audit_record,
    audit_record_with,
    current_request,
    event_hash,
    event_payload,
    new_request_id,
    request_id_of,
)
from scoring.audit.seal import audit_seal, merkle_root, seal_window, unsealed_overdue
from scoring.audit.signals import audit_schedules_reconcile, audit_signals_connect
from scoring.audit.signing import (
    audit_checkpoint_create,
    checkpoint_message,
    checkpoint_signature,
    head_file,
    signing_key_id,
    signing_keys,
)
from scoring.audit.triggers import (
    append_only_expected,
    append_only_install,
    append_only_installed,
    append_only_problems,
    append_only_uninstall,
)
from scoring.audit.verify import VerifyResult, audit_log_verify

__all__ = [
    "GENESIS_HASH",
    "OUTCOMES",
    "VerifyResult",
    "append_only_expected",
    "append_only_install",
    "append_only_installed",
    "append_only_problems",
    "append_only_uninstall",
    "audit_checkpoint_create",
    "audit_event_new",
    "audit_log_verify",
    "audit_record",
    "audit_record_with",
    "audit_schedules_reconcile",
    "audit_seal",
    "audit_signals_connect",
    "audit_status",
    "checkpoint_message",
    "checkpoint_signature",
    "current_request",
    "event_hash",
    "event_payload",
    "head_file",
    "merkle_root",
    "new_request_id",
    "request_id_of",
    "seal_window",
    "signing_key_id",
    "signing_keys",
    "unsealed_overdue",
]


def audit_status() -> dict:
    """For /readyz: the append-only triggers in place and the sealer keeping up."""
    from django_celery_beat.models import PeriodicTask

    from scoring.audit.signals import AUDIT_TASKS

    try:
        problems = append_only_problems()
        overdue, _ = unsealed_overdue()
        scheduled = PeriodicTask.objects.filter(task=AUDIT_TASKS[0], enabled=True).exists()
    except Exception as exc:  # a database that cannot answer: not ready, and why
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    if overdue:
        problems.append(f"{overdue} events unsealed for longer than {int(seal_window().total_seconds())} s")
    if not scheduled:
        problems.append("the audit seal schedule is disabled or missing")
    return {"ok": not problems, "problems": problems}
