"""Applicant PII stored encrypted (Fernet token + keyed fingerprint) instead of
plain JSON, and the ``view_portfolio_pii`` permission that unmasks it.

Existing rows are encrypted in place with the newest key of
``PII_ENCRYPTION_KEYS`` (settings at migrate time); reversing decrypts them.
"""

import hashlib
import json

from django.conf import settings
from django.db import migrations, models

BATCH = 2000


def _keys():
    from cryptography.fernet import Fernet, MultiFernet

    keys = list(settings.PII_ENCRYPTION_KEYS)
    fingerprint_key = hashlib.sha256(b"riskapp-pii-fingerprint:" + keys[0].encode()).digest()
    return MultiFernet([Fernet(k) for k in keys]), fingerprint_key


def encrypt(apps, schema_editor):
    ApplicantPII = apps.get_model("scoring", "ApplicantPII")
    cipher, fingerprint_key = _keys()
    last = 0
    while True:
        rows = list(ApplicantPII.objects.filter(applicant_id__gt=last).order_by("applicant_id")[:BATCH])
        if not rows:
            return
        for row in rows:
            raw = json.dumps(row.data or {}, default=str).encode()
            row.ciphertext = cipher.encrypt(raw).decode("ascii")
            row.fingerprint = hashlib.blake2b(raw, key=fingerprint_key, digest_size=32).hexdigest()
            row.data = {}
        ApplicantPII.objects.bulk_update(rows, ["ciphertext", "fingerprint", "data"])
        last = rows[-1].applicant_id


def decrypt(apps, schema_editor):
    ApplicantPII = apps.get_model("scoring", "ApplicantPII")
    cipher, _ = _keys()
    last = 0
    while True:
        rows = list(ApplicantPII.objects.filter(applicant_id__gt=last).order_by("applicant_id")[:BATCH])
        if not rows:
            return
        for row in rows:
            row.data = json.loads(cipher.decrypt(row.ciphertext.encode("ascii")))
        ApplicantPII.objects.bulk_update(rows, ["data"])
        last = rows[-1].applicant_id


class Migration(migrations.Migration):
    dependencies = [("scoring", "0011_authz_token_narrowed")]

    operations = [
        migrations.AlterModelOptions(
            name="portfolio",
            options={
                "ordering": ["name"],
                "permissions": [
                    ("view_portfolio_data", "View the applicants and scores of the portfolio"),
                    ("score_portfolio", "Score applicants of the portfolio"),
                    ("import_portfolio", "Import data into the portfolio"),
                    ("export_portfolio", "Export data of the portfolio"),
                    ("train_portfolio", "Train and tune models of the portfolio"),
                    ("validate_portfolio", "Approve and promote models of the portfolio"),
                    ("view_portfolio_pii", "See the unmasked personal data of the portfolio's applicants"),
                ],
            },
        ),
        migrations.AddField(
            model_name="applicantpii",
            name="ciphertext",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="applicantpii",
            name="fingerprint",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(encrypt, decrypt),
        migrations.RemoveField(model_name="applicantpii", name="data"),
    ]
