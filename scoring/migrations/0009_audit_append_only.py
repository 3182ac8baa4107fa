"""The audit log is append-only at the database: UPDATE, DELETE and TRUNCATE of
the event and checkpoint tables raise, whatever code or person issues them
through the application's connection. Tampering that gets around this (a
superuser disabling the triggers) is what the hash chain and the signed
checkpoints detect.

Note for later migrations: SQLite rebuilds a table to alter it, which drops its
triggers; a migration altering these tables must run ``install`` again.
"""

from django.db import migrations

TABLES = ("scoring_auditevent", "scoring_auditcheckpoint")

POSTGRESQL_FUNCTION = """
CREATE OR REPLACE FUNCTION scoring_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
"""


def install_sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        statements = [POSTGRESQL_FUNCTION]
        for table in TABLES:
            statements += [
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION scoring_audit_append_only()",
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION scoring_audit_append_only()",
            ]
        return statements
    if vendor == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {op} on {table} is refused'); END"
            for table in TABLES
            for op in ("UPDATE", "DELETE")
        ]
    raise NotImplementedError(f"append-only audit triggers are not written for {vendor}")


def uninstall_sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        statements = [
            f"DROP TRIGGER IF EXISTS {table}_{name} ON {table}"
            for table in TABLES
            for name in ("append_only", "no_truncate")
        ]
        return [*statements, "DROP FUNCTION IF EXISTS scoring_audit_append_only()"]
    if vendor == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_no_{op}" for table in TABLES for op in ("update", "delete")]
    raise NotImplementedError(vendor)


def trigger_names(vendor: str) -> set[str]:
    """The triggers ``install_sql`` creates (to check that they are there)."""
    if vendor == "postgresql":
        return {f"{table}_{name}" for table in TABLES for name in ("append_only", "no_truncate")}
    return {f"{table}_no_{op}" for table in TABLES for op in ("update", "delete")}


def install(apps, schema_editor):
    for statement in install_sql(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)  # None: the "%" in plpgsql is not a placeholder


def uninstall(apps, schema_editor):
    for statement in uninstall_sql(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)  # None: the "%" in plpgsql is not a placeholder


class Migration(migrations.Migration):
    dependencies = [("scoring", "0008_audit_seq")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
