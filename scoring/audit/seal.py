"""The sealer: gives unsealed events their place in the chain, in batches.

Writers only INSERT (no lock, no read of the chain head). The sealer, one at a time,
takes the committed unsealed events in id order, gives each its ``seq``,
``prev_hash`` and ``hash`` (the same per-event chain as before), and writes one
``AuditSeal`` per batch: the Merkle root of the batch's event hashes, chained to
the previous batch's hash and signed (HMAC) with the audit key. Every seal also
appends its signed head to the head file outside the database.

An event that commits after a later id was sealed (a long transaction) simply
lands in the next batch: seq order is sealing order, not id order.

The window: until it is sealed, an event is protected by the append-only trigger
and the application role's grants only. Someone able to bypass the trigger (the
table owner, a superuser) could alter or delete it then without a trace. Beat seals
every 5 seconds (migration 0016) and verify seals before it walks;
``AUDIT_SEAL_WINDOW_SECONDS`` (30 by default) bounds how long an event may stay
unsealed: verify and /readyz fail on any older unsealed event.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import cast

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from scoring.audit.events import GENESIS_HASH, event_hash
from scoring.audit.signing import head_file_append_on_commit, sign
from scoring.models import AuditEvent, AuditSeal

# pg_advisory_xact_lock key of the sealer ("RISKSEAL" in ASCII): one sealer at a time.
# Writers never take it.
SEAL_LOCK_KEY = 0x5249534B5345414C

DEFAULT_BATCH = 1000


def seal_lock() -> None:
    """Serialize sealers (and checkpoints) until the current transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions start with
    BEGIN IMMEDIATE (settings), which already takes the database's write lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])


# --- Merkle tree -------------------------------------------------------------------
def merkle_root(leaf_hashes: list[str]) -> str:
    """Root of the batch's event hashes: RFC 6962's domain separation (0x00 before a
    leaf, 0x01 before two children), an odd last node promoted to the next level."""
    if not leaf_hashes:
        raise ValueError("a batch has at least one event")
    level = [hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for h in leaf_hashes]
    while len(level) > 1:
        parents = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0].hex()


def seal_message(seal: AuditSeal) -> bytes:
    return f"riskapp-audit-seal:v1:{seal.first_seq}:{seal.last_seq}:{seal.merkle_root}:{seal.prev_hash}".encode()


def seal_hash(seal: AuditSeal) -> str:
    return hashlib.sha256(seal_message(seal)).hexdigest()


# --- Sealing --------------------------------------------------------------------------
def audit_seal(*, batch_size: int | None = None) -> int:
    """Seal every event committed so far, batch by batch; the number sealed."""
    size: int = batch_size or int(getattr(settings, "AUDIT_SEAL_BATCH", DEFAULT_BATCH))
    total = 0
    while True:
        sealed = _seal_batch(size)
        total += sealed
        if sealed < size:
            return total


def _seal_batch(batch_size: int) -> int:
    with transaction.atomic():
        seal_lock()
        pending = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:batch_size])
        if not pending:
            return 0
        head = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first()
        last_seal = AuditSeal.objects.order_by("-last_seq").values_list("hash", flat=True).first()
        seal = AuditSeal(prev_hash=last_seal or GENESIS_HASH, sealed_at=timezone.now())
        seq, prev_hash = cast(tuple[int, str], head or (0, GENESIS_HASH))  # a sealed event has both
        seal.first_seq = seq + 1
        leaves: list[str] = []
        for event in pending:
            seq += 1
            event.seq, event.prev_hash = seq, prev_hash
            event.seal = 0  # the payload form of sealed events (id included); the real id below
            event.hash = prev_hash = event_hash(event)
            leaves.append(prev_hash)
        seal.last_seq = seq
        seal.merkle_root = merkle_root(leaves)
        seal.hash = seal_hash(seal)
        seal.key_id, seal.signature = sign(seal_message(seal))
        seal.save(force_insert=True)
        for event in pending:
            event.seal = seal.pk
        _write_chain_fields(pending, seal.pk)
        head_file_append_on_commit(events=seq, last_event_id=pending[-1].pk, last_event_hash=prev_hash, kind="seal")
    return len(pending)


def _write_chain_fields(events: list[AuditEvent], seal_id: int) -> None:
    """One UPDATE per 500 events on PostgreSQL (a join with a VALUES list: bulk_update's
    CASE per column costs O(batch) per row); SQLite, in-process, runs one per event."""
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for start in range(0, len(events), 500):
                chunk = events[start : start + 500]
                values = ", ".join(["(%s::bigint, %s::bigint, %s, %s)"] * len(chunk))
                params = [value for e in chunk for value in (e.pk, e.seq, e.prev_hash, e.hash)]
                cursor.execute(
                    f"UPDATE {table} AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash, seal = %s "
                    f"FROM (VALUES {values}) AS v(id, seq, prev_hash, hash) WHERE e.id = v.id",
                    [seal_id, *params],
                )
        else:
            cursor.executemany(
                f"UPDATE {table} SET seq = %s, prev_hash = %s, hash = %s, seal = %s WHERE id = %s",
                [(e.seq, e.prev_hash, e.hash, seal_id, e.pk) for e in events],
            )


def seal_window() -> timedelta:
    return timedelta(seconds=getattr(settings, "AUDIT_SEAL_WINDOW_SECONDS", 30))


def unsealed_overdue(*, now=None) -> tuple[int, object]:
    """(how many events are unsealed longer than the window, the oldest one's time)."""
    cutoff = (now or timezone.now()) - seal_window()
    overdue = AuditEvent.objects.filter(seq__isnull=True, occurred_at__lt=cutoff)
    oldest = overdue.order_by("occurred_at").values_list("occurred_at", flat=True).first()
    return (overdue.count() if oldest is not None else 0), oldest
