"""The audit log without a global lock: events are written with no chain fields and a
sealer gives them their place (``seq``), hash and batch afterwards, one signed Merkle
batch (``AuditSeal``) at a time.

The append-only triggers change with it: an UPDATE of an event is allowed exactly once,
from unsealed to sealed, touching only ``seq``, ``prev_hash``, ``hash`` and ``seal``;
every other UPDATE, every DELETE and TRUNCATE of the event, seal and checkpoint tables
raises. ``scoring.audit`` reads the SQL from here (frozen with the migration) to check
the triggers are in place and to reinstall them in tests.

Note for later migrations: SQLite rebuilds a table to alter it, which drops its
triggers; a migration altering these tables must run ``install`` again.
"""

from django.db import migrations, models

TABLES = ("scoring_auditevent", "scoring_auditcheckpoint", "scoring_auditseal")

# The fields a sealed or unsealed event keeps for ever (everything but the chain fields).
FIXED_COLUMNS = (
    "id", "occurred_at", "actor_id", "actor_username", "action", "outcome", "portfolio_id",
    "object_type", "object_ids", "details", "request_id", "ip",
)  # fmt: skip

APPEND_ONLY_BODY = """
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
"""

SEAL_ONLY_BODY = f"""
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL
       AND NEW.hash IS NOT NULL AND NEW.seal IS NOT NULL
       AND ({", ".join(f"NEW.{c}" for c in FIXED_COLUMNS)})
           IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in FIXED_COLUMNS)}) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on % is refused (only sealing an unsealed event)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END;
"""

# name -> body, for installing and for checking nobody replaced a body with a no-op.
POSTGRESQL_FUNCTIONS = {"scoring_audit_append_only": APPEND_ONLY_BODY, "scoring_audit_seal_only": SEAL_ONLY_BODY}


def _function_sql(name: str, body: str) -> str:
    return f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$;"


def _sqlite_sealing_only() -> str:
    unchanged = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in FIXED_COLUMNS)
    return (
        "OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL "
        f"AND NEW.seal IS NOT NULL AND {unchanged}"
    )


def install_sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        statements = [_function_sql(name, body) for name, body in POSTGRESQL_FUNCTIONS.items()]
        for table in TABLES:
            row_function = "scoring_audit_seal_only" if table == "scoring_auditevent" else "scoring_audit_append_only"
            statements += [
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {row_function}()",
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION scoring_audit_append_only()",
            ]
        return statements
    if vendor == "sqlite":
        statements = []
        for table in TABLES:
            for op in ("UPDATE", "DELETE"):
                when = (
                    f" WHEN NOT ({_sqlite_sealing_only()})" if (table, op) == ("scoring_auditevent", "UPDATE") else ""
                )
                statements.append(
                    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}{when} "
                    f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {op} on {table} is refused'); END"
                )
        return statements
    raise NotImplementedError(f"append-only audit triggers are not written for {vendor}")


def uninstall_sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        statements = [
            f"DROP TRIGGER IF EXISTS {table}_{name} ON {table}"
            for table in TABLES
            for name in ("append_only", "no_truncate")
        ]
        return [*statements, *(f"DROP FUNCTION IF EXISTS {name}()" for name in POSTGRESQL_FUNCTIONS)]
    if vendor == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_no_{op}" for table in TABLES for op in ("update", "delete")]
    raise NotImplementedError(vendor)


def trigger_names(vendor: str) -> set[str]:
    """The triggers ``install_sql`` creates (to check that they are there)."""
    if vendor == "postgresql":
        return {f"{table}_{name}" for table in TABLES for name in ("append_only", "no_truncate")}
    return {f"{table}_no_{op}" for table in TABLES for op in ("update", "delete")}


def _run(statements, schema_editor):
    for statement in statements:
        schema_editor.execute(statement, params=None)  # None: the "%" in plpgsql is not a placeholder


def uninstall_previous(apps, schema_editor):
    from importlib import import_module

    _run(import_module("scoring.migrations.0009_audit_append_only").uninstall_sql(schema_editor.connection.vendor),
         schema_editor)  # fmt: skip


def install_previous(apps, schema_editor):
    from importlib import import_module

    _run(import_module("scoring.migrations.0009_audit_append_only").install_sql(schema_editor.connection.vendor),
         schema_editor)  # fmt: skip


def install(apps, schema_editor):
    _run(install_sql(schema_editor.connection.vendor), schema_editor)


def uninstall(apps, schema_editor):
    _run(uninstall_sql(schema_editor.connection.vendor), schema_editor)


SEAL_SCHEDULE = "Seal the audit log (signed Merkle batches)"


def schedule_create(apps, schema_editor):
    # Every 5 seconds: with AUDIT_SEAL_WINDOW_SECONDS (30 by default) that leaves room for
    # a few late or lost runs before verify and /readyz call an unsealed event overdue.
    # A run older than its interval is dropped (expire_seconds), not queued up behind others.
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=SEAL_SCHEDULE, defaults={"task": "scoring.tasks.audit_seal", "interval": every, "expire_seconds": 5}
    )


def schedule_remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SEAL_SCHEDULE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0015_supervisor_leases"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(uninstall_previous, install_previous, elidable=False),
        migrations.AlterField(
            model_name="auditevent", name="seq", field=models.BigIntegerField(blank=True, null=True, unique=True)
        ),
        migrations.AlterField(
            model_name="auditevent", name="prev_hash", field=models.CharField(blank=True, max_length=64, null=True)
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        migrations.AddField(model_name="auditevent", name="seal", field=models.BigIntegerField(blank=True, null=True)),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("seq__isnull", True)), fields=["occurred_at"], name="scoring_audit_unsealed"
            ),
        ),
        migrations.CreateModel(
            name="AuditSeal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("first_seq", models.BigIntegerField()),
                ("last_seq", models.BigIntegerField(unique=True)),
                ("merkle_root", models.CharField(max_length=64)),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64, unique=True)),
                ("key_id", models.CharField(max_length=32)),
                ("signature", models.CharField(max_length=128)),
                ("sealed_at", models.DateTimeField()),
            ],
            options={"ordering": ["-id"]},
        ),
        migrations.RunPython(install, uninstall, elidable=False),
        migrations.RunPython(schedule_create, schedule_remove),
    ]
