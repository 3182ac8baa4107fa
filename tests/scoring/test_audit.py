"""The audit log: the hash chain, its signed checkpoints, and verification."""

from __future__ import annotations

import pytest

from scoring.audit import GENESIS_HASH, audit_checkpoint_create, audit_log_verify, audit_record, event_hash
from scoring.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_it_chains_each_event_to_the_one_before():
    user = UserFactory(username="alice")
    first = audit_record(action="login", actor=user)
    second = audit_record(action="applicant.view", actor=user, portfolio_id=3, object_type="applicant", object_ids=[7])
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    stored = AuditEvent.objects.get(pk=second.pk)
    assert stored.actor_username == "alice" and stored.object_ids == [7]
    assert event_hash(stored) == stored.hash


def test_it_hashes_values_as_the_database_returns_them():
    event = audit_record(action="applicant.list", details={"rows": 3, "big": 1e16, "nan": float("nan"), "x": "a\x00b"})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.details == {"rows": 3, "big": 10**16, "nan": None, "x": "a\ufffdb"}
    assert event_hash(stored) == event.hash


def test_a_clean_log_with_a_checkpoint_verifies():
    for i in range(5):
        audit_record(action="applicant.view", object_ids=[i])
    checkpoint = audit_checkpoint_create()
    assert checkpoint is not None and checkpoint.events == 5
    assert audit_checkpoint_create() is None  # nothing new to sign
    audit_record(action="logout")
    result = audit_log_verify(chunk_size=2)
    assert result.ok, result.problem
    assert (result.events_checked, result.checkpoints_verified) == (6, 1)
