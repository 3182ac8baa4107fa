from django.db import migrations, models


def first_row(apps, schema_editor):
    apps.get_model("scoring", "CacheVersion").objects.get_or_create(pk=1, defaults={"value": 0})


class Migration(migrations.Migration):
    dependencies = [("scoring", "0013_import_report_summary")]

    operations = [
        migrations.CreateModel(
            name="CacheVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("value", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(first_row, migrations.RunPython.noop),
    ]
