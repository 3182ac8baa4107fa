"""Applicants' personal data (PII): encryption at rest, masking, and the
data-subject requests (export everything held; erase).

Encryption: each ``ApplicantPII`` row holds the Fernet token (AES-128-CBC with
HMAC-SHA256, authenticated) of the JSON of its PII columns. ``PII_ENCRYPTION_KEYS``
lists the keys newest first: the first encrypts, all decrypt (MultiFernet), so
a key change is "put the new key first, run ``manage.py rotate_pii_keys``, then
drop the old one". A keyed fingerprint of the JSON lets an import skip
unchanged rows without decrypting; it is keyed by the newest key so it cannot be
used to guess low-entropy values (a national id) by hashing candidates.

Masking: whoever lacks ``view_portfolio_pii`` on the applicant's portfolio sees
``J*** S***``, ``***-**-1234``, ``j***@example.com``; every unmasked view is
audited (``pii.view``). API, portal, admin and exports all go through
:func:`pii_masked` / :func:`pii_view`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction

from scoring.audit import audit_record
from scoring.models import Applicant, ApplicantPII, Outcome, RepaymentMonth, Score
from scoring.permissions import has_portfolio_perm
from scoring.services.errors import ServiceError

VIEW_PII = "view_portfolio_pii"


class PIIDecryptionError(ServiceError, RuntimeError):
    """A PII token no configured key opens (a key was dropped too early, or the row was tampered with)."""

    code = "pii_undecryptable"
    status = 500  # the operator's fault (a key dropped too early), not the caller's


# --- Keys and encryption ------------------------------------------------------
@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet, bytes]:
    fernets = [Fernet(key) for key in keys]
    # The fingerprint key is derived from the newest key: whoever holds it can decrypt anyway.
    fingerprint_key = hashlib.sha256(b"riskapp-pii-fingerprint:" + keys[0].encode()).digest()
    return MultiFernet(fernets), fernets[0], fingerprint_key


def _keys() -> tuple[MultiFernet, Fernet, bytes]:
    return _cipher(tuple(settings.PII_ENCRYPTION_KEYS))


def pii_text(data: dict[str, Any]) -> str:
    """The JSON text a dict of PII is stored as (the same shape an import writes)."""
    return json.dumps(data, default=str)


def pii_fingerprint(text: str | bytes) -> str:
    _, _, key = _keys()
    raw = text.encode() if isinstance(text, str) else text
    return hashlib.blake2b(raw, key=key, digest_size=32).hexdigest()


def pii_encrypt_many(texts: Iterable[str | bytes | None]) -> tuple[list[str], list[str]]:
    """(Fernet tokens, fingerprints) of many JSON texts, one tight loop (an import's
    chunk: about 17 µs a row). ``None`` is stored as ``{}``."""
    _, newest, key = _keys()
    encrypt, blake2b = newest.encrypt, hashlib.blake2b
    tokens: list[str] = []
    fingerprints: list[str] = []
    for text in texts:
        raw = b"{}" if text is None else (text.encode() if isinstance(text, str) else text)
        tokens.append(encrypt(raw).decode("ascii"))
        fingerprints.append(blake2b(raw, key=key, digest_size=32).hexdigest())
    return tokens, fingerprints


def pii_fingerprints(texts: Sequence[str | bytes | None]) -> list[str]:
    """The keyed fingerprints alone (cheap: about 1 µs a row), to find changed rows before encrypting."""
    _, _, key = _keys()
    blake2b = hashlib.blake2b
    return [
        blake2b(
            b"{}" if text is None else (text.encode() if isinstance(text, str) else text), key=key, digest_size=32
        ).hexdigest()
        for text in texts
    ]


def pii_encrypt(data: dict[str, Any]) -> tuple[str, str]:
    """(token, fingerprint) of one applicant's PII."""
    tokens, fingerprints = pii_encrypt_many([pii_text(data)])
    return tokens[0], fingerprints[0]


def pii_decrypt(token: str) -> dict[str, Any]:
    multi, _, _ = _keys()
    try:
        return json.loads(multi.decrypt(token.encode("ascii")))
    except InvalidToken:
        raise PIIDecryptionError("no key in PII_ENCRYPTION_KEYS opens this PII token") from None


def pii_read(applicant: Applicant | int) -> dict[str, Any] | None:
    """The applicant's PII in clear, None when none is held. No permission check
    and no audit: for code that has already decided (pii_view, exports, erasure)."""
    applicant_id = applicant if isinstance(applicant, int) else applicant.pk
    token = ApplicantPII.objects.filter(applicant_id=applicant_id).values_list("ciphertext", flat=True).first()
    return None if token is None else pii_decrypt(token)


# --- Masking --------------------------------------------------------------------
# Masking fails closed: a character is shown only when a rule below keeps it on
# purpose, whatever its script. Kept: whitespace and the ASCII separators of ids,
# phone numbers and addresses; the last four digits of an id; the domain of an
# e-mail; and the initial of a word when it is a letter of a cased alphabet (Latin,
# Greek, Cyrillic, Armenian...) or an ASCII digit. A word in an uncased script (CJK,
# Arabic, Hebrew, Thai...) keeps nothing: one of its characters can be a whole
# syllable or name. Everything else (letters, digits of any script, combining marks,
# emoji, other symbols) becomes "*".
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}$")
_SEPARATORS = frozenset(" -+()./,:#'")
_CASED = {"Lu", "Ll", "Lt"}


def _is_separator(c: str) -> bool:
    return c.isspace() or c in _SEPARATORS


def _initial(word: str) -> str:
    first = word[:1]
    if first and (unicodedata.category(first) in _CASED or first in "0123456789"):
        # A letter followed by a combining mark is shown without the mark ("e" of "e\u0301").
        return first
    return ""


def _mask_word(word: str) -> str:
    if all(c in _SEPARATORS for c in word):
        return word  # "-", "&" stand alone: nothing personal
    return f"{_initial(word)}***"


def mask_value(value: Any) -> Any:
    """One PII value masked by its shape: an e-mail keeps its first letter and
    domain, an id or phone number its last four digits, a date nothing, a name
    or address the initial of each word (see the rules above)."""
    if value is None or value == "":
        return value
    text = str(value)
    if _DATE.match(text):
        return "".join(c if c in "-:" else "*" for c in text)
    if "@" in text:
        local, _, domain = text.rpartition("@")
        if _DOMAIN.match(domain):
            return f"{_initial(local)}***@{domain}"
        return f"{_initial(local)}***@***"  # not a plain DNS name: nothing of it is shown
    digits = sum(c.isdigit() for c in text)
    letters = sum(c.isalpha() for c in text)
    if digits >= 4 and digits >= letters:
        keep = 4
        out = []
        for c in reversed(text):
            if _is_separator(c):
                out.append(c)
            elif keep > 0 and c in "0123456789":
                out.append(c)
                keep -= 1
            else:
                out.append("*")
        return "".join(reversed(out))
    return " ".join(_mask_word(word) for word in text.split())


def pii_masked(data: dict[str, Any] | None = None, can_view: bool = False, *, applicant=None, user=None, request=None):
    """PII as a viewer may see it.

    ``pii_masked(data, can_view)``: ``data`` itself when ``can_view``, else every
    value masked (pure; no audit). ``pii_masked(applicant=..., user=...)``: the
    applicant's PII read and shown as ``user`` may see it (:func:`pii_view`).
    """
    if applicant is not None:
        return pii_view(user=user, applicant=applicant, request=request)
    if data is None:
        return None
    return dict(data) if can_view else {key: mask_value(value) for key, value in data.items()}


def can_view_pii(user, portfolio_id: int) -> bool:
    return has_portfolio_perm(user, portfolio_id, VIEW_PII)


def pii_view(*, user, applicant: Applicant, request=None) -> dict[str, Any] | None:
    """The applicant's PII for ``user``: unmasked with ``view_portfolio_pii`` on its
    portfolio (and audited ``pii.view``), masked otherwise. The caller has already
    checked that ``user`` may see the applicant at all."""
    data = pii_read(applicant)
    if data is None:
        return None
    can_view = can_view_pii(user, applicant.portfolio_id)
    if can_view:
        audit_record(
            action="pii.view",
            actor=user,
            request=request,
            portfolio_id=applicant.portfolio_id,
            object_type="applicant",
            object_ids=[applicant.pk],
        )
    return pii_masked(data, can_view)


def pii_masked_many(
    *, user, portfolio_id: int, rows: Sequence[tuple[int, str]], request=None, purpose: str = "pii.view"
) -> dict[int, dict[str, Any]]:
    """Decrypted-and-masked PII of many applicants of one portfolio at once (exports):
    ``rows`` are (applicant id, token). One audit event for the whole set when unmasked."""
    can_view = can_view_pii(user, portfolio_id)
    out = {applicant_id: pii_masked(pii_decrypt(token), can_view) for applicant_id, token in rows}
    if can_view and out:
        audit_record(
            action=purpose,
            actor=user,
            request=request,
            portfolio_id=portfolio_id,
            object_type="applicant",
            object_ids=sorted(out)[:1000],
            details={"applicants": len(out)},
        )
    return out


# --- Key rotation ---------------------------------------------------------------------
def pii_rotate(*, batch_size: int = 1000, actor=None, progress=None) -> int:
    """Re-encrypt every PII row under the newest key (MultiFernet.rotate) and refresh
    its fingerprint, in batches of ``batch_size`` rows, each its own transaction, so
    a long rotation holds no lock for long and can be stopped and run again."""
    multi, _, _ = _keys()
    done = 0
    last_id = 0
    while True:
        with transaction.atomic():
            batch = list(
                ApplicantPII.objects.select_for_update()
                .filter(applicant_id__gt=last_id)
                .order_by("applicant_id")
                .values_list("applicant_id", "ciphertext")[:batch_size]
            )
            if not batch:
                break
            rows = []
            for applicant_id, token in batch:
                try:
                    rotated = multi.rotate(token.encode("ascii"))
                except InvalidToken:
                    raise PIIDecryptionError(f"no configured key opens the PII of applicant {applicant_id}") from None
                rows.append(
                    ApplicantPII(
                        applicant_id=applicant_id,
                        ciphertext=rotated.decode("ascii"),
                        fingerprint=pii_fingerprint(multi.decrypt(rotated)),
                    )
                )
            ApplicantPII.objects.bulk_update(rows, ["ciphertext", "fingerprint"])
        done += len(batch)
        last_id = batch[-1][0]
        if progress is not None:
            progress(done)
    audit_record(action="pii.rotate", actor=actor, details={"rows": done, "keys": len(settings.PII_ENCRYPTION_KEYS)})
    return done


# --- Data-subject requests ------------------------------------------------------------
def applicant_data_export(*, applicant: Applicant, actor=None) -> dict[str, Any]:
    """Everything held about one applicant (a data-subject access request): features,
    PII in clear, protected attributes, repayment history, outcomes and every score
    with its reasons. Audited ``pii.export`` (ids only)."""
    data = {
        "portfolio": applicant.portfolio.name,
        "external_id": applicant.external_id,
        "applicant_id": applicant.pk,
        "schema": {"name": applicant.schema.name, "version": applicant.schema.version},
        "created_at": applicant.created_at.isoformat(),
        "updated_at": applicant.updated_at.isoformat(),
        "features": applicant.features,
        "protected_attributes": applicant.protected_attributes,
        "pii": pii_read(applicant),
        "history": [
            {
                "month": m.month.isoformat(),
                "balance": m.balance,
                "amount_paid": m.amount_paid,
                "days_past_due": m.days_past_due,
            }
            for m in RepaymentMonth.objects.filter(applicant=applicant).order_by("month")
        ],
        "outcomes": [
            {"observed_on": o.observed_on.isoformat(), "defaulted": o.defaulted}
            for o in Outcome.objects.filter(applicant=applicant).order_by("observed_on")
        ],
        "scores": [
            {
                "id": s.pk,
                "created_at": s.created_at.isoformat(),
                "model_version": str(s.model_version),
                "is_shadow": s.is_shadow,
                "pd": s.pd,
                "score": s.score,
                "decision": s.decision,
                "reasons": s.reasons,
                "input_features": s.input_features,
            }
            for s in Score.objects.filter(applicant=applicant).select_related("model_version").order_by("created_at")
        ],
    }
    audit_record(
        action="pii.export",
        actor=actor,
        portfolio_id=applicant.portfolio_id,
        object_type="applicant",
        object_ids=[applicant.pk],
        details={"scores": len(data["scores"]), "history_months": len(data["history"])},
    )
    return data


def pii_columns(applicant: Applicant) -> list[str]:
    """The PII column names of the applicant's schema(s): what must never leave the PII table."""
    from scoring.models import DatasetSchema

    names: set[str] = set()
    for definition in DatasetSchema.objects.filter(
        pk__in={applicant.schema_id, applicant.portfolio.schema_id}
    ).values_list("definition", flat=True):
        names |= {c["name"] for c in definition.get("columns", []) if c.get("role") == DatasetSchema.ROLE_PII}
    return sorted(names)


@transaction.atomic
def applicant_erase(*, applicant: Applicant, actor=None) -> dict[str, int]:
    """Erase an applicant's personal data (right to erasure): the PII row goes, and any
    PII column that reached a feature, protected attribute or score input is removed.
    The applicant, history, outcomes and scores stay: they are the lender's record
    of a credit decision (kept under its own retention rule) and hold no PII. No
    cache holds PII (the only process cache keeps a portfolio's latest month), so
    there is none to clear. The audit event names ids only."""
    columns = pii_columns(applicant)
    erased_pii = ApplicantPII.objects.filter(applicant=applicant).delete()[0]
    changed_fields = 0
    for attribute in ("features", "protected_attributes"):
        values = getattr(applicant, attribute) or {}
        leaked = [c for c in columns if c in values]
        if leaked:
            setattr(applicant, attribute, {k: v for k, v in values.items() if k not in leaked})
            changed_fields += 1
    if changed_fields:
        applicant.save(update_fields=["features", "protected_attributes", "updated_at"])
    cleaned_scores = 0
    for score in Score.objects.filter(applicant=applicant).only("pk", "input_features"):
        inputs = score.input_features or {}
        if any(c in inputs for c in columns):
            Score.objects.filter(pk=score.pk).update(
                input_features={k: v for k, v in inputs.items() if k not in columns}
            )
            cleaned_scores += 1
    result = {"pii_rows": erased_pii, "applicant_fields": changed_fields, "scores": cleaned_scores}
    audit_record(
        action="pii.erase",
        actor=actor,
        portfolio_id=applicant.portfolio_id,
        object_type="applicant",
        object_ids=[applicant.pk],
        details=result,
    )
    return result
