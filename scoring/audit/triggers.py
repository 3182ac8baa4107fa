"""The append-only triggers: are they installed, enabled and unaltered?"""

from __future__ import annotations

import importlib

from django.db import connection


def _trigger_migration():
    # The SQL lives in the migration that installs it (frozen with it); read from there.
    return importlib.import_module("scoring.migrations.0016_audit_sealer")


def append_only_expected() -> set[str]:
    return _trigger_migration().trigger_names(connection.vendor)


def append_only_installed() -> set[str]:
    """Names of the audit tables' append-only triggers present and enabled in the database."""
    tables = _trigger_migration().TABLES
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # tgenabled: O (origin, the default) or A (always) fire in a normal session; D is
            # disabled (ALTER TABLE ... DISABLE TRIGGER), R fires only in replica mode.
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled IN ('O', 'A') "
                "AND tgrelid::regclass::text = ANY(%s)",
                [list(tables)],
            )
        else:
            placeholders = ", ".join(["%s"] * len(tables))
            cursor.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({placeholders})",
                list(tables),
            )
        return {row[0] for row in cursor.fetchall()} & append_only_expected()


def append_only_problems() -> list[str]:
    """What is wrong with the append-only protection: missing or disabled triggers, and
    (PostgreSQL) a trigger function whose body is not the one the migration installed."""
    problems = [
        f"append-only trigger {name} is missing or disabled"
        for name in sorted(append_only_expected() - append_only_installed())
    ]
    if connection.vendor == "postgresql":
        functions = _trigger_migration().POSTGRESQL_FUNCTIONS
        with connection.cursor() as cursor:
            cursor.execute("SELECT proname, prosrc FROM pg_proc WHERE proname = ANY(%s)", [list(functions)])
            bodies = dict(cursor.fetchall())
        for name, body in functions.items():
            if name not in bodies:
                problems.append(f"append-only trigger function {name}() is missing")
            elif bodies[name].strip() != body.strip():
                problems.append(f"append-only trigger function {name}() was replaced")
    return problems


def append_only_install() -> None:
    with connection.cursor() as cursor:
        for statement in _trigger_migration().install_sql(connection.vendor):
            cursor.execute(statement)


def append_only_uninstall() -> None:
    with connection.cursor() as cursor:
        for statement in _trigger_migration().uninstall_sql(connection.vendor):
            cursor.execute(statement)
