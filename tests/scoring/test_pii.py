"""Applicant PII: encrypted at rest, masked for whoever lacks the PII grant, key
rotation, and the data-subject requests (export, erasure)."""

from __future__ import annotations

import json
import os

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from riskapp.env import pii_encryption_keys
from scoring.models import Applicant, ApplicantPII, AuditEvent, Score
from scoring.services.access import portfolio_access_grant
from scoring.services.pii import (
    PIIDecryptionError,
    mask_value,
    pii_decrypt,
    pii_masked,
    pii_read,
    pii_rotate,
    pii_view,
)
from tests.factories import UserFactory, synthetic_portfolio

pytestmark = pytest.mark.django_db


@pytest.fixture
def book():
    return synthetic_portfolio(n=12, seed=4)


def viewer(portfolio, *, pii: bool):
    """A senior analyst granted the portfolio, with or without the PII permission."""
    from django.contrib.auth.models import Permission

    user = UserFactory()
    perms = ("view_portfolio_data", "view_portfolio_pii") if pii else ("view_portfolio_data",)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms, content_type__app_label="scoring"))
    portfolio_access_grant(portfolio=portfolio, grantee=user, perms=perms)
    return type(user).objects.get(pk=user.pk)  # fresh: no cached permissions


# --- At rest ----------------------------------------------------------------------
def test_pii_is_stored_as_a_token_and_read_back_in_clear(book):
    applicant = Applicant.objects.filter(portfolio=book).first()
    row = ApplicantPII.objects.get(applicant=applicant)
    data = pii_read(applicant)
    assert set(data) == {"full_name", "national_id", "email", "phone", "address", "date_of_birth"}
    for value in data.values():
        assert str(value) not in row.ciphertext
    assert row.ciphertext.startswith("gAAAA")  # a Fernet token
    assert len(row.fingerprint) == 64


def test_a_tampered_token_is_refused(book):
    row = ApplicantPII.objects.filter(applicant__portfolio=book).first()
    forged = row.ciphertext[:-8] + ("A" * 8 if not row.ciphertext.endswith("A" * 8) else "B" * 8)
    with pytest.raises(PIIDecryptionError):
        pii_decrypt(forged)


# --- Keys from the environment ------------------------------------------------------
def test_a_production_set_up_without_a_key_refuses_to_start(tmp_path, monkeypatch):
    monkeypatch.delenv("PII_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("PII_ENCRYPTION_KEYS_FILE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="PII_ENCRYPTION_KEYS"):
        pii_encryption_keys(tmp_path, debug=False, allow_generated=False)
    assert not (tmp_path / "pii_encryption_key").exists()


def test_development_generates_one_key_into_var_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.delenv("PII_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("PII_ENCRYPTION_KEYS_FILE", raising=False)
    first = pii_encryption_keys(tmp_path, debug=True, allow_generated=False)
    assert first == pii_encryption_keys(tmp_path, debug=False, allow_generated=True)
    assert oct(os.stat(tmp_path / "pii_encryption_key").st_mode & 0o777) == "0o600"


def test_keys_come_newest_first_from_the_environment_or_a_file_and_nonsense_is_refused(tmp_path, monkeypatch):
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("PII_ENCRYPTION_KEYS", f"{new},{old}")
    assert pii_encryption_keys(tmp_path, debug=False, allow_generated=False) == [new, old]
    secret = tmp_path / "keys"
    secret.write_text(new + "\n")
    monkeypatch.setenv("PII_ENCRYPTION_KEYS_FILE", str(secret))
    assert pii_encryption_keys(tmp_path, debug=False, allow_generated=False) == [new]
    monkeypatch.delenv("PII_ENCRYPTION_KEYS_FILE")
    monkeypatch.setenv("PII_ENCRYPTION_KEYS", "not-a-key")
    with pytest.raises(ImproperlyConfigured, match="not a Fernet key"):
        pii_encryption_keys(tmp_path, debug=True, allow_generated=True)


# --- Masking ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("John Doe", "J*** D***"),
        ("123-45-6789", "***-**-6789"),
        ("john.doe@example.com", "j***@example.com"),
        ("+1 555 123 4567", "+* *** *** 4567"),
        ("1980-05-17", "****-**-**"),
        ("12 Main Street, Springfield", "1*** M*** S*** S***"),
        (None, None),
    ],
)
def test_values_are_masked_by_their_shape(value, masked):
    assert mask_value(value) == masked


def test_without_the_pii_grant_values_are_masked_and_no_view_is_audited(book):
    applicant = Applicant.objects.filter(portfolio=book).first()
    clear = pii_read(applicant)
    shown = pii_view(user=viewer(book, pii=False), applicant=applicant)
    assert shown == pii_masked(clear, False)
    assert not set(map(str, clear.values())) & set(map(str, shown.values()))
    assert not AuditEvent.objects.filter(action="pii.view").exists()


def test_with_the_pii_grant_values_are_clear_and_the_view_is_audited_with_ids_only(book):
    applicant = Applicant.objects.filter(portfolio=book).first()
    user = viewer(book, pii=True)
    assert pii_masked(applicant=applicant, user=user) == pii_read(applicant)
    event = AuditEvent.objects.get(action="pii.view")
    assert (event.actor_id, event.portfolio_id, event.object_ids) == (user.pk, book.pk, [applicant.pk])
    assert pii_read(applicant)["full_name"] not in json.dumps(event.details)


# --- Rotation ------------------------------------------------------------------------
def test_rotation_re_encrypts_every_row_under_the_newest_key(book, settings):
    old = settings.PII_ENCRYPTION_KEYS[0]
    before = {a.pk: pii_read(a) for a in Applicant.objects.filter(portfolio=book)}
    new = Fernet.generate_key().decode()
    settings.PII_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_pii_keys", "--batch-size", "5")
    settings.PII_ENCRYPTION_KEYS = [new]  # the old key is gone: every row must still open
    assert {pk: pii_read(pk) for pk in before} == before
    settings.PII_ENCRYPTION_KEYS = [old]
    with pytest.raises(PIIDecryptionError):
        pii_read(next(iter(before)))
    event = AuditEvent.objects.get(action="pii.rotate")
    assert event.details == {"rows": len(before), "keys": 2}


def test_rotation_stops_on_a_row_no_key_opens(book, settings):
    settings.PII_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(PIIDecryptionError):
        pii_rotate()


# --- Data-subject requests ------------------------------------------------------------
def test_export_writes_everything_held_and_is_audited(book, tmp_path):
    applicant = Applicant.objects.filter(portfolio=book).first()
    output = tmp_path / "subject.json"
    call_command("export_applicant_data", "--portfolio", book.name, "--external-id", applicant.external_id,
                 "--output", str(output))  # fmt: skip
    data = json.loads(output.read_text())
    assert data["pii"] == pii_read(applicant)
    assert data["features"] == applicant.features and data["protected_attributes"] == applicant.protected_attributes
    assert len(data["history"]) == applicant.history.count() > 0
    assert data["outcomes"] and data["external_id"] == applicant.external_id
    assert oct(output.stat().st_mode & 0o777) == "0o600"
    event = AuditEvent.objects.get(action="pii.export")
    assert event.object_ids == [applicant.pk]


def all_text_in_the_database() -> str:
    """Every value of every table, as text: what an attacker with a dump would read."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            parts.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(parts)


def test_after_erasure_no_pii_of_the_applicant_is_anywhere_and_the_audit_log_holds_ids_only(book):
    applicant, other = Applicant.objects.filter(portfolio=book).order_by("pk")[:2]
    clear = pii_read(applicant)
    # PII that reached a feature or a score's stored input (a schema that once
    # declared a PII column as a feature): erasure must find it there too.
    applicant.features = {**applicant.features, "email": clear["email"]}
    applicant.save()
    version = _model_version(book)
    Score.objects.create(
        portfolio=book, applicant=applicant, model_version=version, pd=0.1, score=600, decision="approve",
        base_log_odds=-2.0, input_features={**applicant.features, "full_name": clear["full_name"]}, input_hash="x" * 64,
    )  # fmt: skip
    pii_view(user=viewer(book, pii=True), applicant=applicant)  # an audited view before the erasure
    assert clear["email"] in all_text_in_the_database()

    call_command("erase_applicant", "--portfolio", book.name, "--external-id", applicant.external_id)

    dump = all_text_in_the_database()
    for value in clear.values():
        assert str(value) not in dump, f"{value!r} survived the erasure"
    assert pii_read(applicant) is None and pii_read(other) is not None
    event = AuditEvent.objects.get(action="pii.erase")
    assert event.object_ids == [applicant.pk]
    assert event.details == {"pii_rows": 1, "applicant_fields": 1, "scores": 1}
    for details, object_ids in AuditEvent.objects.values_list("details", "object_ids"):
        assert all(isinstance(i, int) for i in object_ids)
        assert not any(str(v) in json.dumps(details) for v in clear.values())


def _model_version(portfolio):
    from scoring.models import ModelVersion

    return ModelVersion.objects.create(portfolio=portfolio, version=1, kind="mlp", schema=portfolio.schema)
