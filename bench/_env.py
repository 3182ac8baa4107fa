"""The environment the PostgreSQL benches run Django in."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_environment(database: str) -> None:
    """Point Django at the bench database; give it a PII key of its own.

    A PostgreSQL set-up refuses to start without PII_ENCRYPTION_KEYS (as production
    must); the bench databases hold synthetic people only, so a key generated once
    into var/ serves every bench run and its worker and web processes."""
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskapp.settings")
    if not os.environ.get("PII_ENCRYPTION_KEYS"):
        from cryptography.fernet import Fernet

        key_file = ROOT / "var" / "bench_pii_key"
        key_file.parent.mkdir(exist_ok=True)
        if not key_file.exists():
            key_file.write_text(Fernet.generate_key().decode())
        os.environ["PII_ENCRYPTION_KEYS"] = key_file.read_text().strip()
