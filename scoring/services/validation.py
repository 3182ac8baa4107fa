"""Validation notes: what a validator writes about a model version while judging it.

Notes are added, never edited or deleted; each one is audited with the SHA-256 of its
text, so the hash chain shows that a note read today is the note written then.
"""

from __future__ import annotations

import hashlib

from django.db import transaction

from scoring.models import ModelVersion, ValidationNote
from scoring.services.errors import ForbiddenError, ServiceError

NOTE_MAX = 5000


class ValidationNoteInvalid(ServiceError):
    """The note is empty or too long."""

    code = "invalid_note"


def validation_note_add(*, version: ModelVersion, user, text: str, request=None) -> ValidationNote:
    """Add a validator's note to a model version (any status: a rejected or retired
    version keeps being discussed)."""
    from scoring.audit import audit_record
    from scoring.services.registry import _may_validate

    text = (text or "").strip()
    if not text:
        raise ValidationNoteInvalid("A validation note needs some text.")
    if len(text) > NOTE_MAX:
        raise ValidationNoteInvalid(f"A validation note has at most {NOTE_MAX} characters.")
    if not _may_validate(user, version):
        raise ForbiddenError("Only a validator of this portfolio can write validation notes on its models.")
    with transaction.atomic():
        note = ValidationNote.objects.create(model_version=version, author=user, text=text)
        audit_record(
            action="model.note", actor=user, request=request, portfolio_id=version.portfolio_id,
            object_type="modelversion", object_ids=[version.pk],
            details={"note": note.pk, "characters": len(text), "text_sha256": hashlib.sha256(text.encode()).hexdigest()},
        )  # fmt: skip
    return note
