"""Drop the three single-column indexes of scoring_score that composite indexes
already lead with (portfolio_id, applicant_id, run_id).

Only the indexes go: Django's own AlterField would drop and re-add each foreign
key constraint, re-validating every score row (minutes, under a lock, on a
production table of millions), and rebuild the whole table on SQLite. The names
are Django's (table, column, hash), the same on both databases."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = (
    "scoring_score_applicant_id_e0d95484",
    "scoring_score_portfolio_id_bfbcd008",
    "scoring_score_run_id_eca14331",
)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0016_audit_sealer")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{name}"', reverse_sql=migrations.RunSQL.noop)
                for name in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="score",
                    name="applicant",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="scores",
                        to="scoring.applicant",
                    ),
                ),
                migrations.AlterField(
                    model_name="score",
                    name="portfolio",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="scoring.portfolio",
                    ),
                ),
                migrations.AlterField(
                    model_name="score",
                    name="run",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="scores",
                        to="scoring.batchrun",
                    ),
                ),
            ],
        )
    ]
