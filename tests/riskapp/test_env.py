from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from riskapp import env


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), ("ON", True), ("0", False), ("false", False)])
def test_env_bool_accepts_plain_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert env.env_bool("X_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["yes", "no", "2", "truthy"])
def test_env_bool_rejects_nonsense_with_the_variable_name(monkeypatch, raw):
    monkeypatch.setenv("X_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env.env_bool("X_FLAG", False)


def test_env_int_checks_type_and_bounds(monkeypatch):
    monkeypatch.setenv("X_INT", "abc")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env.env_int("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env.env_int("X_INT", 1, minimum=1)
    monkeypatch.setenv("X_INT", "42")
    assert env.env_int("X_INT", 1, minimum=1) == 42


def test_env_list_rejects_empty_items(monkeypatch):
    monkeypatch.setenv("X_LIST", "a,,b")
    with pytest.raises(ImproperlyConfigured):
        env.env_list("X_LIST", [])
    monkeypatch.setenv("X_LIST", "a, b")
    assert env.env_list("X_LIST", []) == ["a", "b"]


def test_secret_is_read_from_a_file_first(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s" * 40 + "\n")
    monkeypatch.setenv("SECRET_KEY", "ignored" * 10)
    monkeypatch.setenv("SECRET_KEY_FILE", str(secret))
    assert env.secret_key(tmp_path) == "s" * 40


def test_secret_key_is_generated_once_into_var(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY_FILE", raising=False)
    first = env.secret_key(tmp_path)
    assert len(first) >= 32
    assert env.secret_key(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_short_secret_key_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ImproperlyConfigured, match="32"):
        env.secret_key(tmp_path)


@pytest.mark.parametrize(
    "url, engine, name, host, port, user",
    [
        (
            "postgres://alice:pw@db.example:6543/risk",
            "django.db.backends.postgresql",
            "risk",
            "db.example",
            "6543",
            "alice",
        ),
        (
            "postgresql://postgres@127.0.0.1/riskapp",
            "django.db.backends.postgresql",
            "riskapp",
            "127.0.0.1",
            "",
            "postgres",
        ),
        ("sqlite:////abs/path/db.sqlite3", "django.db.backends.sqlite3", "/abs/path/db.sqlite3", "", "", ""),
    ],
)
def test_database_url_is_parsed(url, engine, name, host, port, user):
    parsed = env.parse_database_url(url, base_dir=Path("/base"))
    assert (parsed.engine, parsed.name, parsed.host, parsed.port, parsed.user) == (engine, name, host, port, user)


def test_relative_sqlite_path_is_relative_to_the_project():
    assert env.parse_database_url("sqlite:///var/x.db", base_dir=Path("/base")).name == "/base/var/x.db"


@pytest.mark.parametrize("url", ["mysql://root@localhost/x", "postgres://host/", "sqlite://", "nonsense"])
def test_unsupported_database_urls_are_refused(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.parse_database_url(url, base_dir=Path("/base"))


def test_settings_refuse_to_start_with_a_bad_value(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django, os; django.setup()"],
        env={
            "DJANGO_SETTINGS_MODULE": "riskapp.settings",
            "DEBUG": "yes",
            "VAR_DIR": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode != 0
    assert "DEBUG='yes' is not a boolean" in result.stderr
