"""Signed statements about the chain: the HMAC keys, checkpoints (the count and head
of the chain, signed) and the copy of the newest ones kept outside the database.

Where the newest signed head lives (the choice, see README "Audit log"):

* ``AuditCheckpoint`` rows, in a table the application's database role may only
  INSERT into and SELECT from (``manage.py grant_app_role``; the append-only
  trigger refuses UPDATE, DELETE and TRUNCATE, and the application role, not being
  the owner, cannot disable it). This stops anyone holding the application's
  database credentials.
* ``AUDIT_HEAD_FILE``, an append-only JSON-lines file on the workers' volume (never
  the database server's): every seal batch and every checkpoint appends its signed
  head there. A database superuser or the migration role can disable triggers and
  delete a tail of events, seals and checkpoints together; they cannot reach this
  file, and verify compares the chain with the newest head it holds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scoring.models import AuditCheckpoint, AuditEvent

logger = logging.getLogger(__name__)

# The head file is read from its end: the newest statements are there.
HEAD_FILE_TAIL_BYTES = 256 * 1024


def signing_keys() -> dict[str, bytes]:
    """key id -> key for every configured audit signing key; the first signs."""
    keys = [settings.AUDIT_SIGNING_KEY, *getattr(settings, "AUDIT_SIGNING_OLD_KEYS", [])]
    return {signing_key_id(key): key.encode("utf-8") for key in keys}


def signing_key_id(key: str) -> str:
    """A public name of a key (its fingerprint), recorded beside each signature."""
    return hashlib.sha256(b"riskapp-audit-key:" + key.encode("utf-8")).hexdigest()[:16]


def sign(message: bytes) -> tuple[str, str]:
    """(key id, HMAC-SHA256 hex) of ``message`` under the current key."""
    key = settings.AUDIT_SIGNING_KEY
    return signing_key_id(key), hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_problem(what: str, key_id: str, signature: str, message: bytes, keys: dict[str, bytes]) -> str:
    key = keys.get(key_id)
    if key is None:
        return f"{what}: signed with unknown key {key_id!r}"
    if not hmac.compare_digest(hmac.new(key, message, hashlib.sha256).hexdigest(), signature):
        return f"{what}: signature mismatch"
    return ""


# --- Checkpoints: "the chain had `events` events, the last one `id` with `hash`" ---------
def checkpoint_message(*, last_event_id: int, last_event_hash: str, events: int) -> bytes:
    return f"riskapp-audit-checkpoint:v1:{last_event_id}:{last_event_hash}:{events}".encode()


def checkpoint_signature(key: bytes, *, last_event_id: int, last_event_hash: str, events: int) -> str:
    message = checkpoint_message(last_event_id=last_event_id, last_event_hash=last_event_hash, events=events)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedHead:
    """A signed (count, head) statement read back from the head file."""

    events: int
    last_event_id: int
    last_event_hash: str
    key_id: str
    signature: str
    source: str

    def problem(self, keys: dict[str, bytes]) -> str:
        message = checkpoint_message(
            last_event_id=self.last_event_id, last_event_hash=self.last_event_hash, events=self.events
        )
        return signature_problem(self.source, self.key_id, self.signature, message, keys)


def sealed_head() -> tuple[int, str, int] | None:
    """(id, hash, seq) of the newest sealed event."""
    head = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("id", "hash", "seq").first()
    return cast(tuple[int, str, int] | None, head)  # a sealed event has its hash and seq


def audit_checkpoint_create(*, head: tuple[int, str, int] | None = None) -> AuditCheckpoint | None:
    """Seal what is pending, then sign the chain head (or ``head``: the id, hash and
    seq of an event just verified) in the database and in the head file; None when
    there is nothing new to sign."""
    from scoring.audit.seal import audit_seal, seal_lock

    if head is None:
        audit_seal()
    with transaction.atomic():
        seal_lock()  # the head cannot move under us
        if head is None:
            head = sealed_head()
        if head is None:
            return None
        last_id, last_hash, seq = head
        if AuditCheckpoint.objects.filter(events__gte=seq).exists():
            return None
        key_id, signature = sign(checkpoint_message(last_event_id=last_id, last_event_hash=last_hash, events=seq))
        checkpoint = AuditCheckpoint.objects.create(
            last_event_id=last_id,
            last_event_hash=last_hash,
            events=seq,  # seq runs 1, 2, 3, ... without gaps: the number of events so far
            key_id=key_id,
            signature=signature,
        )
        head_file_append_on_commit(events=seq, last_event_id=last_id, last_event_hash=last_hash, kind="checkpoint")
    return checkpoint


# --- The head file (outside the database) ------------------------------------------------
def head_file() -> Path | None:
    value = getattr(settings, "AUDIT_HEAD_FILE", None)
    return Path(value) if value else None


def head_file_append_on_commit(*, events: int, last_event_id: int, last_event_hash: str, kind: str) -> None:
    """After the transaction that made this head commits, append its signed statement."""
    key_id, signature = sign(
        checkpoint_message(last_event_id=last_event_id, last_event_hash=last_event_hash, events=events)
    )
    line = json.dumps(
        {
            "kind": kind,
            "events": events,
            "last_event_id": last_event_id,
            "last_event_hash": last_event_hash,
            "key_id": key_id,
            "signature": signature,
            "at": timezone.now().isoformat(),
        },
        sort_keys=True,
    )
    transaction.on_commit(lambda: _head_file_write(line))


def _head_file_write(line: str) -> None:
    path = head_file()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: lines from several sealers never interleave (each is one short write).
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        # The events are sealed and signed in the database already; verify reports a
        # head file that stopped following the chain only through its older lines.
        logger.exception("audit: could not append the signed head to %s", path)


def head_file_newest() -> tuple[SignedHead | None, str]:
    """(the head file's statement with the most events, problem). Only the file's last
    HEAD_FILE_TAIL_BYTES are read: heads are appended in (nearly) chain order."""
    path = head_file()
    if path is None or not path.exists():
        return None, ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - HEAD_FILE_TAIL_BYTES))
        lines = handle.read().decode("utf-8", errors="replace").splitlines()
    if size > HEAD_FILE_TAIL_BYTES:
        lines = lines[1:]  # the first one is probably cut
    newest = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            head = SignedHead(
                events=int(record["events"]),
                last_event_id=int(record["last_event_id"]),
                last_event_hash=str(record["last_event_hash"]),
                key_id=str(record["key_id"]),
                signature=str(record["signature"]),
                source=f"head file {path.name}",
            )
        except (ValueError, KeyError, TypeError):
            return None, f"head file {path}: unreadable line {number} from the end of its tail"
        if newest is None or head.events > newest.events:
            newest = head
    return newest, ""
