"""The audit chain's gap-free position: ids may skip, ``seq`` never does."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("scoring", "0007_monitoring_audit_tokens")]

    operations = [
        # No event was written before this migration (the writer arrives with it),
        # so the placeholder default never lands in a row.
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(default=0, unique=True),
            preserve_default=False,
        ),
    ]
