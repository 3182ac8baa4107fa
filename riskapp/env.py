"""Small typed readers for configuration from the environment.

Every setting comes from an environment variable. A value that cannot be what it
claims ("yes" is not a boolean here, "abc" is not a port) stops start-up with a
message that names the variable, rather than running with a silent default.
Secrets may also be given as ``NAME_FILE`` pointing at a file (Docker/Kubernetes
secrets), which wins over ``NAME``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "on"}
_FALSE = {"0", "false", "off"}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use one of 1/0, true/false, on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}.")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(item == "" for item in items):
        raise ImproperlyConfigured(f"{name}={value!r} has an empty item: separate values with single commas.")
    return items


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default)
    assert value is not None
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {sorted(choices)}.")
    return value


def env_secret(name: str) -> str | None:
    """Read a secret from NAME_FILE (preferred) or NAME."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        path = Path(file_name)
        if not path.is_file():
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} does not point at a readable file.")
        content = path.read_text(encoding="utf-8").strip()
        if not content:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} is empty.")
        return content
    return env_str(name)


def secret_key(var_dir: Path) -> str:
    """SECRET_KEY from the environment, else one generated once into var/ (never committed)."""
    configured = env_secret("SECRET_KEY")
    if configured:
        if len(configured) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")
        return configured
    key = generated_secret(var_dir, "secret_key", make=lambda: secrets.token_urlsafe(50))
    if len(key) < 32:
        raise ImproperlyConfigured(
            f"{var_dir / 'secret_key'} holds a SECRET_KEY shorter than 32 characters; delete it to regenerate."
        )
    return key


def generated_secret(var_dir: Path, file_name: str, *, make: Callable[[], str]) -> str:
    """A secret generated once into ``var_dir/file_name`` (never committed) and read back.

    Used for the embedded/development defaults of keys that production sets in
    the environment. O_EXCL: two processes starting at once must not write two
    different keys.
    """
    path = var_dir / file_name
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(make())
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ImproperlyConfigured(f"{path} is empty; delete it to regenerate.")
    return value


def audit_signing_keys(var_dir: Path) -> tuple[str, list[str]]:
    """(signing key, older keys still accepted when verifying) of the audit checkpoints.

    AUDIT_SIGNING_KEY signs; AUDIT_SIGNING_OLD_KEYS (comma-separated) only verify
    checkpoints signed before a key change. Without AUDIT_SIGNING_KEY a key is
    generated once into var/ (development and the embedded default).
    """
    key = env_secret("AUDIT_SIGNING_KEY") or generated_secret(
        var_dir, "audit_signing_key", make=lambda: secrets.token_urlsafe(48)
    )
    if len(key) < 32:
        raise ImproperlyConfigured("AUDIT_SIGNING_KEY must be at least 32 characters long.")
    old = [k.strip() for k in (env_secret("AUDIT_SIGNING_OLD_KEYS") or "").split(",") if k.strip()]
    return key, old


def pii_encryption_keys(var_dir: Path, *, debug: bool, allow_generated: bool) -> list[str]:
    """Fernet keys for applicant PII, newest first (PII_ENCRYPTION_KEYS, comma-separated).

    The first key encrypts; every key decrypts, so a new key is put in front and
    ``manage.py rotate_pii_keys`` re-encrypts the rows before the old one is
    dropped. Without the variable, a development set-up (DEBUG, or the embedded
    default where ``allow_generated``) gets a key generated once into var/; a
    production set-up refuses to start rather than keep PII under a key that
    lives beside the database.
    """
    from cryptography.fernet import Fernet

    configured = env_secret("PII_ENCRYPTION_KEYS")
    if configured:
        keys = [k.strip() for k in configured.split(",")]
    elif debug or allow_generated:
        keys = [generated_secret(var_dir, "pii_encryption_key", make=lambda: Fernet.generate_key().decode())]
    else:
        raise ImproperlyConfigured(
            "PII_ENCRYPTION_KEYS (or PII_ENCRYPTION_KEYS_FILE) must be set when DEBUG is off: "
            "generate one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
        )
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"PII_ENCRYPTION_KEYS item {index + 1} is not a Fernet key (32 url-safe base64-encoded bytes)."
            ) from None
    return keys


@dataclass(frozen=True)
class DatabaseUrl:
    engine: str
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: dict[str, str] | None = None

    def as_django(self) -> dict[str, object]:
        config: dict[str, object] = {
            "ENGINE": self.engine,
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": self.port,
            "OPTIONS": dict(self.options or {}),
        }
        return config


def parse_database_url(url: str, *, base_dir: Path) -> DatabaseUrl:
    """Parse postgres://user:pass@host:port/name?sslmode=require or sqlite:///path/to.db."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database (postgres://user@host:5432/NAME).")
        try:
            port = str(parts.port or "")
        except ValueError:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} has an invalid port.") from None
        return DatabaseUrl(
            engine="django.db.backends.postgresql",
            name=name,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            host=unquote(parts.hostname or ""),
            port=port,
            options=dict(parse_qsl(parts.query)),
        )
    if scheme == "sqlite":
        # sqlite:///relative.db (relative to the project), sqlite:////abs/path.db, sqlite://:memory:
        raw = parts.path or parts.netloc
        if raw in {"", "/"}:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no SQLite file.")
        if raw == ":memory:":
            return DatabaseUrl(engine="django.db.backends.sqlite3", name=":memory:")
        # One slash after "sqlite://" starts the path: three slashes is relative, four absolute.
        path = Path(raw[1:]) if raw.startswith("/") else Path(raw)
        if not path.is_absolute():
            path = base_dir / path
        return DatabaseUrl(engine="django.db.backends.sqlite3", name=str(path))
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: unsupported scheme {parts.scheme!r}; use postgres:// or sqlite:///."
    )


def s3_storages(aliases: list[str], *, bucket_name: str, prefix: str = "", **options) -> dict[str, dict]:
    """``STORAGES`` entries putting each alias under its own prefix of one S3-compatible
    bucket (django-storages). ``options`` are S3Storage's: endpoint_url, region_name,
    access_key, secret_key (None: boto3's own credential chain), addressing_style."""
    prefix = prefix.strip("/")
    common = {
        "bucket_name": bucket_name,
        "default_acl": None,  # the bucket's own policy: objects are never made public
        "querystring_auth": True,
        "file_overwrite": True,  # names carry a random part: no existence check before each write
        **options,
    }
    return {
        alias: {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {**common, "location": f"{prefix}/{alias}" if prefix else alias},
        }
        for alias in aliases
    }
