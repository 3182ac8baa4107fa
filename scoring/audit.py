"""The audit log: an append-only, hash-chained record of who did what.

``audit_record`` is the only writer. Each event stores ``seq`` (its position in
the chain, 1, 2, 3, ...), ``prev_hash`` (the hash of the event before) and
``hash = sha256(prev_hash + canonical JSON of its fields)``, so removing,
editing or reordering a row behind the application's back breaks the chain
(``manage.py verify_audit_log`` finds the first broken link). The database
refuses UPDATE, DELETE and TRUNCATE on the table (triggers installed by a
migration), and ``audit_checkpoint_create`` periodically signs the chain head
with an HMAC key the database never holds, so even a rewrite of the whole chain
from some point on is caught.

Transactions: an event joins the caller's transaction when one is open, so the
event of an action that rolled back disappears with the action. A denied request
is recorded by ``scoring.middleware.AuditMiddleware`` after the view has
returned, outside any view transaction (ATOMIC_REQUESTS wraps only the view),
so the denial is kept even when the view's work was rolled back. Record events
after long transactions, not inside them: on PostgreSQL the chain lock is held
until the caller's transaction ends.

Never pass PII (names, national ids, contact data) in ``details``: ids only.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import ipaddress
import json
import math
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from scoring.models import AuditCheckpoint, AuditEvent

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key of the chain head ("RISKAUDT" in ASCII): one writer at a time.
CHAIN_LOCK_KEY = 0x5249534B41554454

OUTCOMES = {"success", "denied", "failure"}

# The web request being served (set by scoring.middleware.AuditMiddleware), so that
# services, which are not handed the request, still record its id, IP and user.
current_request: ContextVar = ContextVar("scoring_audit_request", default=None)

_MAX_LENGTHS = {
    "actor_username": AuditEvent._meta.get_field("actor_username").max_length,
    "action": AuditEvent._meta.get_field("action").max_length,
    "object_type": AuditEvent._meta.get_field("object_type").max_length,
    "request_id": AuditEvent._meta.get_field("request_id").max_length,
}


# --- Canonical form -----------------------------------------------------------
def _clean_json(value: Any) -> Any:
    """A JSON value that survives every database's JSON column unchanged.

    PostgreSQL's jsonb rejects NaN and NUL characters and prints integral floats
    as integers (1e16 comes back as 10000000000000000), so integral floats
    become ints here, before the hash is taken, and verification reads back the
    same value it hashed.
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean_json(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_clean_json(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    # Dates, decimals, UUIDs, numpy scalars: their JSON text, as Django's encoder writes it.
    if hasattr(value, "item"):  # numpy scalar
        return _clean_json(value.item())
    return _clean_json(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def _clean_text(value: Any, field: str) -> str:
    text = "" if value is None else str(value).replace("\x00", "\ufffd")
    return text[: _MAX_LENGTHS[field]]


def _clean_ip(value: Any) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_payload(event: AuditEvent) -> dict[str, Any]:
    """The fields an event's hash covers, in canonical form."""
    return {
        "seq": event.seq,
        "occurred_at": _timestamp(event.occurred_at),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "outcome": event.outcome,
        "portfolio_id": event.portfolio_id,
        "object_type": event.object_type,
        "object_ids": _clean_json(event.object_ids),
        "details": _clean_json(event.details),
        "request_id": event.request_id,
        "ip": _clean_ip(event.ip),
    }


def event_hash(event: AuditEvent) -> str:
    """sha256(prev_hash + canonical JSON of the event's fields), hex."""
    canonical = json.dumps(
        event_payload(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256((event.prev_hash + canonical).encode("utf-8")).hexdigest()


# --- Writing ------------------------------------------------------------------
def _lock_chain() -> None:
    """Serialize writers of the chain head until the current transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so two writers never read the
    same last hash (which would fork the chain). SQLite: transactions start with
    BEGIN IMMEDIATE (settings), which already takes the database's write lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def _request_ip(request) -> str | None:
    return _clean_ip(request.META.get("REMOTE_ADDR")) if request is not None else None


def request_id_of(request) -> str:
    """The id the request middleware gave this request ("" without one)."""
    if request is None:
        return ""
    value = getattr(request, "request_id", None)
    if value is None and hasattr(request, "_request"):  # a DRF Request wraps the Django one
        value = getattr(request._request, "request_id", None)
    return value or ""


def audit_record(
    *,
    action: str,
    actor=None,
    request=None,
    portfolio_id: int | None = None,
    object_type: str = "",
    object_ids: Iterable = (),
    details: dict | None = None,
    outcome: str = "success",
    actor_username: str | None = None,
) -> AuditEvent:
    """Append one event to the audit log and return it.

    ``request`` (by default the web request being served, if any) supplies the
    actor (when ``actor`` is not given), the client IP and the request id. ``actor_username`` names an actor that is not a user
    row (the attempted user name of a failed login). ``details`` holds ids,
    counts and filters, never PII.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {sorted(OUTCOMES)}")
    if request is None:
        request = current_request.get()
    if not action:
        raise ValueError("an audit event needs an action")
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    username = actor_username if actor_username is not None else (actor.get_username() if actor is not None else "")
    event = AuditEvent(
        actor_id=actor.pk if actor is not None else None,
        actor_username=_clean_text(username, "actor_username"),
        action=_clean_text(action, "action"),
        outcome=outcome,
        portfolio_id=int(portfolio_id) if portfolio_id is not None else None,
        object_type=_clean_text(object_type, "object_type"),
        object_ids=_clean_json(list(object_ids)),
        details=_clean_json(details or {}),
        request_id=_clean_text(request_id_of(request), "request_id"),
        ip=_request_ip(request),
    )
    with transaction.atomic():
        _lock_chain()
        last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        event.seq, event.prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        # Taken under the lock, so time never runs backwards along the chain.
        event.occurred_at = timezone.now()
        event.hash = event_hash(event)
        event.save(force_insert=True)
    return event


# --- Checkpoints --------------------------------------------------------------
def signing_keys() -> dict[str, bytes]:
    """key id -> key for every configured audit signing key; the first signs."""
    keys = [settings.AUDIT_SIGNING_KEY, *getattr(settings, "AUDIT_SIGNING_OLD_KEYS", [])]
    return {signing_key_id(key): key.encode("utf-8") for key in keys}


def signing_key_id(key: str) -> str:
    """A public name of a key (its fingerprint), recorded beside each signature."""
    return hashlib.sha256(b"riskapp-audit-key:" + key.encode("utf-8")).hexdigest()[:16]


def checkpoint_message(*, last_event_id: int, last_event_hash: str, events: int) -> bytes:
    return f"riskapp-audit-checkpoint:v1:{last_event_id}:{last_event_hash}:{events}".encode()


def checkpoint_signature(key: bytes, *, last_event_id: int, last_event_hash: str, events: int) -> str:
    message = checkpoint_message(last_event_id=last_event_id, last_event_hash=last_event_hash, events=events)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def audit_checkpoint_create(*, head: tuple[int, str, int] | None = None) -> AuditCheckpoint | None:
    """Sign the chain head (or ``head``: the id, hash and seq of an event just
    verified); None when there is nothing new to sign."""
    key = settings.AUDIT_SIGNING_KEY
    with transaction.atomic():
        _lock_chain()
        if head is None:
            head = AuditEvent.objects.order_by("-seq").values_list("id", "hash", "seq").first()
        if head is None:
            return None
        last_id, last_hash, seq = head
        if AuditCheckpoint.objects.filter(last_event_id__gte=last_id).exists():
            return None
        return AuditCheckpoint.objects.create(
            last_event_id=last_id,
            last_event_hash=last_hash,
            events=seq,  # seq runs 1, 2, 3, ... without gaps: the number of events so far
            key_id=signing_key_id(key),
            signature=checkpoint_signature(
                key.encode("utf-8"), last_event_id=last_id, last_event_hash=last_hash, events=seq
            ),
        )


# --- Verification -------------------------------------------------------------
@dataclass
class VerifyResult:
    """The outcome of walking the chain: counts, and the first broken link if any."""

    events_checked: int = 0
    checkpoints_verified: int = 0
    last_verified: tuple[int, str, int] | None = None  # id, hash, seq
    broken_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def _checkpoint_problem(checkpoint: AuditCheckpoint, keys: dict[str, bytes]) -> str:
    key = keys.get(checkpoint.key_id)
    if key is None:
        return f"checkpoint {checkpoint.pk}: signed with unknown key {checkpoint.key_id!r}"
    expected = checkpoint_signature(
        key,
        last_event_id=checkpoint.last_event_id,
        last_event_hash=checkpoint.last_event_hash,
        events=checkpoint.events,
    )
    if not hmac.compare_digest(expected, checkpoint.signature):
        return f"checkpoint {checkpoint.pk}: signature mismatch"
    return ""


def audit_log_verify(*, chunk_size: int = 2000, progress=None) -> VerifyResult:
    """Walk every event in id order and every checkpoint; stop at the first broken link."""
    result = VerifyResult()
    keys = signing_keys()
    checkpoints: dict[int, AuditCheckpoint] = {}
    for checkpoint in AuditCheckpoint.objects.order_by("last_event_id").iterator(chunk_size=chunk_size):
        problem = _checkpoint_problem(checkpoint, keys)
        if problem:
            result.problem, result.broken_id = problem, checkpoint.last_event_id
            return result
        checkpoints[checkpoint.last_event_id] = checkpoint

    prev_hash, expected_seq = GENESIS_HASH, 1
    for event in _events_in_order(chunk_size):
        problem = ""
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                problem = f"gap: seq {event.seq} follows seq {expected_seq - 1} ({event.seq - expected_seq} missing)"
            else:
                problem = f"gap: seq {event.seq} repeats or goes back (expected {expected_seq})"
        elif event.prev_hash != prev_hash:
            problem = "prev_hash mismatch: does not name the hash of the event before"
        elif not hmac.compare_digest(event_hash(event), event.hash):
            problem = "hash mismatch: the event's fields were changed"
        else:
            signed = checkpoints.pop(event.pk, None)
            if signed is not None:
                if signed.last_event_hash != event.hash or signed.events != event.seq:
                    problem = f"checkpoint {signed.pk} hash mismatch: the signed head differs from the event"
                else:
                    result.checkpoints_verified += 1
        if problem:
            result.problem, result.broken_id = problem, event.pk
            return result
        result.events_checked += 1
        result.last_verified = (event.pk, event.hash, event.seq)
        prev_hash, expected_seq = event.hash, event.seq + 1
        if progress is not None and result.events_checked % 100_000 == 0:
            progress(result.events_checked)
    if checkpoints:
        # A signed head the walk never reached: events were removed (the tail, perhaps).
        missing = min(checkpoints)
        result.problem = f"checkpoint {checkpoints[missing].pk}: signed event {missing} is missing"
        result.broken_id = missing
    return result


def _events_in_order(chunk_size: int) -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size)


def new_request_id() -> str:
    return uuid.uuid4().hex


# --- The append-only triggers -------------------------------------------------
def _trigger_migration():
    # The SQL lives in the migration that installs it (frozen with it); read from there.
    return importlib.import_module("scoring.migrations.0009_audit_append_only")


def append_only_expected() -> set[str]:
    return _trigger_migration().trigger_names(connection.vendor)


def append_only_installed() -> set[str]:
    """Names of the audit tables' append-only triggers present in the database."""
    tables = _trigger_migration().TABLES
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY(%s)",
                [list(tables)],
            )
        else:
            placeholders = ", ".join(["%s"] * len(tables))
            cursor.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({placeholders})",
                list(tables),
            )
        return {row[0] for row in cursor.fetchall()} & append_only_expected()


def append_only_install() -> None:
    with connection.cursor() as cursor:
        for statement in _trigger_migration().install_sql(connection.vendor):
            cursor.execute(statement)


def append_only_uninstall() -> None:
    with connection.cursor() as cursor:
        for statement in _trigger_migration().uninstall_sql(connection.vendor):
            cursor.execute(statement)


# --- Sign-in events -------------------------------------------------------------
def _on_login(sender, request, user, **kwargs) -> None:
    audit_record(action="login", actor=user, request=request)


def _on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django has already masked secrets in ``credentials``; only the attempted user
    # name is kept (it may be a typo or someone else's name, which is what an
    # auditor looking at password guessing needs), never anything else given.
    from django.contrib.auth import get_user_model

    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or ""
    audit_record(action="login_failed", request=request, outcome="failure", actor_username=str(username))


def _on_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_record(action="logout", actor=user, request=request)


def audit_signals_connect() -> None:
    """Record sign-in, failed sign-in and sign-out (called once from the app's ready())."""
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

    user_logged_in.connect(_on_login, dispatch_uid="scoring.audit.login")
    user_login_failed.connect(_on_login_failed, dispatch_uid="scoring.audit.login_failed")
    user_logged_out.connect(_on_logout, dispatch_uid="scoring.audit.logout")
