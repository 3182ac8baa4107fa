"""Writing events: the canonical form an event's hash covers, and ``audit_record``."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from scoring.models import AuditEvent

GENESIS_HASH = "0" * 64

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
    """The fields an event's hash covers, in canonical form.

    Events sealed in batches also cover their row id (the sealer knows it; a writer
    holding the chain lock did not need it): seq order is no longer id order, so a
    swapped id must break a hash. Events chained before the sealer (``seal`` empty)
    keep the form they were hashed with.
    """
    payload = {
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
    if event.seal is not None:
        payload["id"] = event.pk
    return payload


def event_hash(event: AuditEvent) -> str:
    """sha256(prev_hash + canonical JSON of the event's fields), hex."""
    canonical = json.dumps(
        event_payload(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(((event.prev_hash or "") + canonical).encode("utf-8")).hexdigest()


# --- Writing ------------------------------------------------------------------
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


def new_request_id() -> str:
    return uuid.uuid4().hex


def audit_event_new(
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
    """The event ``audit_record`` writes, built and cleaned but not saved (the
    arguments are ``audit_record``'s)."""
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
    return AuditEvent(
        occurred_at=timezone.now(),
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
    """Append one event to the audit log and return it (unsealed: ``seq`` and
    ``hash`` are given by the sealer within AUDIT_SEAL_WINDOW_SECONDS).

    A plain INSERT, no lock: concurrent writers never wait for each other. The
    event joins the caller's transaction when one is open, so an action and its
    event commit (or roll back) together.

    ``request`` (by default the web request being served, if any) supplies the
    actor (when ``actor`` is not given), the client IP and the request id.
    ``actor_username`` names an actor that is not a user row (the attempted user
    name of a failed login). ``details`` holds ids, counts and filters, never PII.
    """
    event = audit_event_new(
        action=action, actor=actor, request=request, portfolio_id=portfolio_id, object_type=object_type,
        object_ids=object_ids, details=details, outcome=outcome, actor_username=actor_username,
    )  # fmt: skip
    # One INSERT, no savepoint: inside the caller's transaction it commits or rolls back
    # with the action; outside one, the statement is its own transaction.
    event.save(force_insert=True)
    return event


def audit_record_with(
    row: Model,
    *,
    action: str,
    actor=None,
    request=None,
    portfolio_id: int | None = None,
    object_type: str = "",
    details: dict | None = None,
) -> AuditEvent:
    """Insert the new ``row`` and its event (``object_ids``: the row's new id)
    together: both commit or neither does. Sets ``row.pk`` and returns the event.

    On PostgreSQL it is ONE statement (a data-modifying CTE, its own transaction in
    autocommit): one round trip instead of BEGIN, two INSERTs and COMMIT, which is
    most of what a real-time decision costs the database. Elsewhere: both INSERTs
    in one transaction."""
    event = audit_event_new(
        action=action, actor=actor, request=request, portfolio_id=portfolio_id, object_type=object_type,
        details=details,
    )  # fmt: skip
    _INSERT_TOGETHER.get(connection.vendor, _insert_in_a_transaction)(row, event)
    return event


def _insert_in_a_transaction(row: Model, event: AuditEvent) -> None:
    with transaction.atomic():
        row.save(force_insert=True)
        event.object_ids = [row.pk]
        event.save(force_insert=True)


def _insert_values(obj: Model, exclude: str | None = None) -> tuple[list[str], list[Any]]:
    """Columns and database values of a new row, as the ORM's INSERT prepares them
    (``pre_save`` fills ``auto_now_add``; the auto primary key is the database's)."""
    fields = [f for f in obj._meta.concrete_fields if not f.primary_key and f.attname != exclude]
    return (
        [connection.ops.quote_name(f.column) for f in fields],
        [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields],
    )


def _insert_in_one_statement(row: Model, event: AuditEvent) -> None:
    row_columns, row_values = _insert_values(row)
    event_columns, event_values = _insert_values(event, exclude="object_ids")
    table, pk = connection.ops.quote_name(row._meta.db_table), connection.ops.quote_name(row._meta.pk.column)
    events, event_pk = connection.ops.quote_name(AuditEvent._meta.db_table), connection.ops.quote_name("id")
    object_ids = connection.ops.quote_name(AuditEvent._meta.get_field("object_ids").column)
    sql = (
        f"WITH row_ AS (INSERT INTO {table} ({', '.join(row_columns)}) "
        f"VALUES ({', '.join(['%s'] * len(row_values))}) RETURNING {pk}), "
        f"event_ AS (INSERT INTO {events} ({', '.join(event_columns)}, {object_ids}) "
        f"VALUES ({', '.join(['%s'] * len(event_values))}, jsonb_build_array((SELECT {pk} FROM row_))) "
        f"RETURNING {event_pk}) "
        f"SELECT (SELECT {pk} FROM row_), (SELECT {event_pk} FROM event_)"
    )
    # Inside a caller's transaction a failure must not abort it: a savepoint, as
    # transaction.atomic() would take. Outside one the statement is its own transaction.
    with transaction.atomic() if connection.in_atomic_block else nullcontext(), connection.cursor() as cursor:
        cursor.execute(sql, [*row_values, *event_values])
        row_id, event_id = cursor.fetchone()
    for obj, pk_value in ((row, row_id), (event, event_id)):
        obj.pk = pk_value
        obj._state.adding = False
        obj._state.db = connection.alias
    event.object_ids = [row_id]


_INSERT_TOGETHER = {"postgresql": _insert_in_one_statement}
