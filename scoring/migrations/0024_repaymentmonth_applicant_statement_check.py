"""RepaymentMonth.applicant: the database checks the reference once per statement,
not once per row.

A foreign key checks each inserted row with its own trigger call and index probe
(and locks the applicant again for each of its 24 months): on PostgreSQL that was
about 40% of the server's time of a history import (bench/load_synthetic.py). The
constraint is replaced by statement-level triggers over the transition table that
keep what it guaranteed:

* inserting or updating repayment months locks each referenced applicant once
  (``FOR KEY SHARE``, what the foreign key's check takes) and raises a
  ``foreign_key_violation`` when one does not exist;
* deleting applicants deletes their repayment months (Django's cascade does it
  first; the trigger catches a delete issued in SQL and one that waited on an
  import's lock, whose months it could not see when it collected them).

SQLite (development and the default test database) gets the same checks as row
triggers. Note for later migrations: SQLite rebuilds a table to alter it, which
drops its triggers; a migration altering ``scoring_repaymentmonth`` or
``scoring_applicant`` must run ``install`` again (tests/scoring/test_ingestion_history.py
fails if the triggers are gone).
"""

import django.db.models.deletion
from django.db import migrations, models

POSTGRESQL_FUNCTIONS = [
    """
CREATE OR REPLACE FUNCTION scoring_repaymentmonth_applicant_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    locked bigint;
BEGIN
    SELECT count(DISTINCT applicant_id) INTO wanted FROM added;
    SELECT count(*) INTO locked FROM (
        SELECT 1 FROM scoring_applicant WHERE id IN (SELECT applicant_id FROM added) FOR KEY SHARE
    ) AS referenced;
    IF locked <> wanted THEN
        RAISE EXCEPTION 'repayment months refer to % applicant(s) that do not exist', wanted - locked
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
""",
    """
CREATE OR REPLACE FUNCTION scoring_applicant_history_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM scoring_repaymentmonth WHERE applicant_id IN (SELECT id FROM removed);
    RETURN NULL;
END;
$$;
""",
]

POSTGRESQL_TRIGGERS = {
    "scoring_repaymentmonth_applicant_insert": "AFTER INSERT ON scoring_repaymentmonth REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION scoring_repaymentmonth_applicant_check()",
    "scoring_repaymentmonth_applicant_update": "AFTER UPDATE ON scoring_repaymentmonth REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION scoring_repaymentmonth_applicant_check()",
    "scoring_applicant_history_cascade": "AFTER DELETE ON scoring_applicant REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION scoring_applicant_history_cascade()",
}

_SQLITE_MISSING = (
    "WHEN NOT EXISTS (SELECT 1 FROM scoring_applicant WHERE id = NEW.applicant_id) "
    "BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: no such applicant'); END"
)
SQLITE_TRIGGERS = {
    "scoring_repaymentmonth_applicant_insert": f"BEFORE INSERT ON scoring_repaymentmonth FOR EACH ROW {_SQLITE_MISSING}",
    "scoring_repaymentmonth_applicant_update": "BEFORE UPDATE OF applicant_id ON scoring_repaymentmonth FOR EACH ROW "
    + _SQLITE_MISSING,
    "scoring_applicant_history_cascade": "AFTER DELETE ON scoring_applicant FOR EACH ROW "
    "BEGIN DELETE FROM scoring_repaymentmonth WHERE applicant_id = OLD.id; END",
}


def _triggers(vendor: str) -> dict[str, str]:
    if vendor == "postgresql":
        return POSTGRESQL_TRIGGERS
    if vendor == "sqlite":
        return SQLITE_TRIGGERS
    raise NotImplementedError(f"the repayment month reference triggers are not written for {vendor}")


def trigger_names(vendor: str) -> set[str]:
    """The triggers ``install`` creates (to check that they are there)."""
    return set(_triggers(vendor))


def _table_of(definition: str) -> str:
    return definition.split(" ON ", 1)[1].split(" ", 1)[0]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = list(POSTGRESQL_FUNCTIONS) if vendor == "postgresql" else []
    for name, definition in _triggers(vendor).items():
        drop = f"DROP TRIGGER IF EXISTS {name}" + (f" ON {_table_of(definition)}" if vendor == "postgresql" else "")
        statements += [drop, f"CREATE TRIGGER {name} {definition}"]
    for statement in statements:
        schema_editor.execute(statement, params=None)  # None: the "%" in plpgsql is not a placeholder


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for name, definition in _triggers(vendor).items():
        on = f" ON {_table_of(definition)}" if vendor == "postgresql" else ""
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}{on}", params=None)
    if vendor == "postgresql":
        for function in ("scoring_repaymentmonth_applicant_check", "scoring_applicant_history_cascade"):
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()", params=None)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0023_review_decisions")]

    operations = [
        # Triggers first on the way back: the foreign key is re-created over rows the
        # triggers kept consistent.
        migrations.RunPython(migrations.RunPython.noop, uninstall, elidable=False),
        migrations.AlterField(
            model_name="repaymentmonth",
            name="applicant",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="history",
                to="scoring.applicant",
            ),
        ),
        migrations.RunPython(install, migrations.RunPython.noop, elidable=False),
    ]
