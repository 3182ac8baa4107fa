"""Verification: walk the chain in seq order with its seals and checkpoints."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from scoring.audit.events import GENESIS_HASH, event_hash
from scoring.audit.seal import audit_seal, merkle_root, seal_hash, seal_message, seal_window, unsealed_overdue
from scoring.audit.signing import SignedHead, checkpoint_message, head_file_newest, signature_problem, signing_keys
from scoring.models import AuditCheckpoint, AuditEvent, AuditSeal


@dataclass
class VerifyResult:
    """The outcome of walking the chain: counts, and the first broken link if any."""

    events_checked: int = 0
    checkpoints_verified: int = 0
    seals_verified: int = 0
    sealed_now: int = 0
    head_file_events: int | None = None  # the newest head outside the database, if any
    last_verified: tuple[int, str, int] | None = None  # id, hash, seq
    broken_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def _checkpoint_problem(checkpoint: AuditCheckpoint, keys: dict[str, bytes]) -> str:
    message = checkpoint_message(
        last_event_id=checkpoint.last_event_id, last_event_hash=checkpoint.last_event_hash, events=checkpoint.events
    )
    return signature_problem(f"checkpoint {checkpoint.pk}", checkpoint.key_id, checkpoint.signature, message, keys)


def _events_in_order(chunk_size: int) -> Iterator[AuditEvent]:
    return AuditEvent.objects.filter(seq__isnull=False).order_by("seq").iterator(chunk_size=chunk_size)


class _Seals:
    """The seals in chain order, each checked when the walk reaches its last event."""

    def __init__(self, keys: dict[str, bytes], chunk_size: int):
        self.keys = keys
        self._iter = AuditSeal.objects.order_by("last_seq").iterator(chunk_size=chunk_size)
        self.current: AuditSeal | None = next(self._iter, None)
        self.prev_hash = GENESIS_HASH
        self.leaves: list[str] = []
        self.verified = 0

    def add(self, event: AuditEvent) -> str:
        seal = self.current
        seq, digest = cast(int, event.seq), cast(str, event.hash)  # walked events are sealed
        if event.seal is None:
            if self.verified or self.leaves:
                return "an unsealed-form event after the first seal"
            return ""  # chained before the sealer existed: covered by the chain and checkpoints
        if seal is None or event.seal != seal.pk or not (seal.first_seq <= seq <= seal.last_seq):
            return f"event names seal {event.seal}, which does not cover seq {seq}"
        if not self.leaves and seal.first_seq != seq:
            return f"seal {seal.pk} starts at seq {seal.first_seq}, the chain at seq {seq}"
        self.leaves.append(digest)
        if seq < seal.last_seq:
            return ""
        # The seal's last event: its batch is complete.
        if seal.prev_hash != self.prev_hash:
            return f"seal {seal.pk}: prev_hash does not name the seal before"
        if merkle_root(self.leaves) != seal.merkle_root:
            return f"seal {seal.pk}: Merkle root mismatch (an event of seq {seal.first_seq}-{seal.last_seq} changed)"
        if not hmac.compare_digest(seal_hash(seal), seal.hash):
            return f"seal {seal.pk}: hash mismatch"
        problem = signature_problem(f"seal {seal.pk}", seal.key_id, seal.signature, seal_message(seal), self.keys)
        if problem:
            return problem
        self.prev_hash, self.leaves, self.verified = seal.hash, [], self.verified + 1
        self.current = next(self._iter, None)
        return ""


def audit_log_verify(*, chunk_size: int = 2000, progress=None, seal: bool = True) -> VerifyResult:
    """Seal what is pending (unless ``seal`` is False), then walk every sealed event in
    seq order, every seal and every checkpoint, and compare with the newest signed
    head outside the database; stop at the first broken link."""
    result = VerifyResult()
    if seal:
        result.sealed_now = audit_seal()
    keys = signing_keys()

    # Signed heads: every checkpoint in the database and the newest in the head file.
    heads: dict[int, list[SignedHead | AuditCheckpoint]] = {}
    for checkpoint in AuditCheckpoint.objects.order_by("events").iterator(chunk_size=chunk_size):
        problem = _checkpoint_problem(checkpoint, keys)
        if problem:
            result.problem, result.broken_id = problem, checkpoint.last_event_id
            return result
        heads.setdefault(checkpoint.events, []).append(checkpoint)
    outside, problem = head_file_newest()
    if not problem and outside is not None:
        problem = outside.problem(keys)
        result.head_file_events = outside.events
        heads.setdefault(outside.events, []).append(outside)
    if problem:
        result.problem = problem
        return result

    seals = _Seals(keys, chunk_size)
    prev_hash, expected_seq = GENESIS_HASH, 1
    for event in _events_in_order(chunk_size):
        problem = ""
        if event.seq != expected_seq:
            gap = cast(int, event.seq) - expected_seq
            problem = f"gap: seq {event.seq} follows seq {expected_seq - 1} ({gap} missing)"
        elif event.prev_hash != prev_hash:
            problem = "prev_hash mismatch: does not name the hash of the event before"
        elif not hmac.compare_digest(event_hash(event), event.hash or ""):
            problem = "hash mismatch: the event's fields were changed"
        else:
            for signed in heads.pop(event.seq, []):
                name = f"checkpoint {signed.pk}" if isinstance(signed, AuditCheckpoint) else signed.source
                if signed.last_event_hash != event.hash or signed.last_event_id != event.pk:
                    problem = f"{name} hash mismatch: the signed head differs from event seq {event.seq}"
                    break
                result.checkpoints_verified += isinstance(signed, AuditCheckpoint)
            problem = problem or seals.add(event)
        if problem:
            result.problem, result.broken_id = problem, event.pk
            return result
        result.events_checked += 1
        seq, digest = cast(int, event.seq), cast(str, event.hash)  # sealed, and the hash was checked
        result.last_verified = (event.pk, digest, seq)
        prev_hash, expected_seq = digest, seq + 1
        if progress is not None and result.events_checked % 100_000 == 0:
            progress(result.events_checked)
    result.seals_verified = seals.verified

    if heads:
        # A signed head the walk never reached: events were removed (the tail, perhaps).
        signed = heads[min(heads)][0]
        name = f"checkpoint {signed.pk}" if isinstance(signed, AuditCheckpoint) else signed.source
        result.problem = (
            f"{name}: signed event {signed.last_event_id} (seq {signed.events}) is missing; "
            f"the chain ends at seq {expected_seq - 1} (a tail was removed)"
        )
        result.broken_id = signed.last_event_id
        return result
    if seals.current is not None:
        seal_row = seals.current
        result.problem = (
            f"seal {seal_row.pk}: covers seq {seal_row.first_seq}-{seal_row.last_seq}, "
            f"the chain ends at seq {expected_seq - 1} (events were removed)"
        )
        return result
    overdue, oldest = unsealed_overdue()
    if overdue:
        result.problem = (
            f"{overdue} events unsealed for longer than {int(seal_window().total_seconds())} s "
            f"(oldest written {oldest:%Y-%m-%d %H:%M:%S}): the sealer is not running"
        )
    return result
