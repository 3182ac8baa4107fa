"""Least privilege at the database: the application connects as a role that owns
nothing, so it can never alter, disable or drop the audit log's triggers.

Two roles (README "Database roles"):

* the **migration role** owns the schema: ``manage.py migrate`` and this module's
  ``app_role_grant`` run as it (the compose ``migrate`` service, the Kubernetes
  migrate Job, CI);
* the **application role** (web, workers, beat) gets SELECT, INSERT, UPDATE and
  DELETE on the tables, and on the audit tables only SELECT and INSERT, plus
  UPDATE of the four columns the sealer fills. Not being the owner (nor a member of
  the owner, nor a superuser), it cannot ``ALTER TABLE ... DISABLE TRIGGER``,
  ``DROP TRIGGER``, replace the trigger function or ``SET session_replication_role``.
"""

from __future__ import annotations

import re

from django.db import connection, transaction

from scoring.services.errors import ServiceError

AUDIT_TABLES = ("scoring_auditevent", "scoring_auditcheckpoint", "scoring_auditseal")
# What the sealer writes into an unsealed event (the trigger allows nothing else).
SEAL_COLUMNS = ("seq", "prev_hash", "hash", "seal")
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class DatabaseRoleError(ServiceError):
    """The application role cannot be set up as asked."""

    code = "database_role"


def _app_role_refusal(cursor, role: str) -> str:
    cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
    row = cursor.fetchone()
    if row is None:
        return f"role {role!r} does not exist (CREATE ROLE {role} LOGIN PASSWORD '...' first)"
    if row[0] or row[1]:
        return f"role {role!r} is a superuser or bypasses row security: it could disable any trigger"
    cursor.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relname = ANY(%s) AND c.relkind = 'r' "
        "AND pg_has_role(%s, c.relowner, 'MEMBER')",
        [list(AUDIT_TABLES), role],
    )
    owned = [name for (name,) in cursor.fetchall()]
    if owned:
        return f"role {role!r} owns (or is a member of the owner of) {', '.join(owned)}: it could disable the trigger"
    return ""


def app_role_grant(*, role: str) -> list[str]:
    """Grant ``role`` what the application needs on this database and no more; the
    statements run. Idempotent: run it after every ``migrate``, as the migration role."""
    if connection.vendor != "postgresql":
        raise DatabaseRoleError("database roles exist on PostgreSQL only (the embedded SQLite file has none)")
    if not _ROLE_NAME.match(role):
        raise DatabaseRoleError(f"{role!r} is not a plain role name")
    quote = connection.ops.quote_name
    name = quote(role)
    audit = ", ".join(AUDIT_TABLES)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {name}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}",
        # Tables a later migration creates are usable before this runs again.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {name}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {name}",
        # The audit log: read and append; the sealer's columns, nothing else.
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {audit} FROM {name}",
        f"GRANT SELECT, INSERT ON {audit} TO {name}",
        f"GRANT UPDATE ({', '.join(SEAL_COLUMNS)}) ON scoring_auditevent TO {name}",
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        refusal = _app_role_refusal(cursor, role)
        if refusal:
            raise DatabaseRoleError(refusal)
        cursor.execute("SELECT current_database(), current_setting('server_version_num')::int")
        database, version = cursor.fetchone()
        # TEMPORARY: batch scoring and bulk imports stage rows in temporary tables.
        statements.insert(0, f"GRANT CONNECT, TEMPORARY ON DATABASE {quote(database)} TO {name}")
        if version >= 170000:
            # ANALYZE after imports (PostgreSQL 17's MAINTAIN: VACUUM, ANALYZE, REINDEX, never
            # ALTER); not on the audit tables. Before 17 only the owner (or autovacuum) analyzes.
            statements += [
                f"GRANT MAINTAIN ON ALL TABLES IN SCHEMA public TO {name}",
                f"REVOKE MAINTAIN ON {audit} FROM {name}",
            ]
        for statement in statements:
            cursor.execute(statement)
    return statements


def connection_privilege_problems() -> list[str]:
    """What makes the current connection more powerful than the application role
    should be (empty on SQLite, which has no roles)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        refusal = _app_role_refusal(cursor, cursor.fetchone()[0])
    return [refusal] if refusal else []
