"""Model versions name their artifact in the artifacts storage (scoring/storage.py)
instead of recording an absolute path: an absolute path under ARTIFACT_DIR becomes the
name relative to it (the default local storage's root), so existing models load as
before. Reversed: names become paths under ARTIFACT_DIR again."""

import os
from pathlib import Path

from django.conf import settings
from django.db import migrations, models


def _root() -> Path:
    return Path(os.fspath(settings.ARTIFACT_DIR)).resolve()


def paths_to_names(apps, schema_editor):
    ModelVersion = apps.get_model("scoring", "ModelVersion")
    root = _root()
    for pk, value in ModelVersion.objects.exclude(artifact_name="").values_list("pk", "artifact_name"):
        path = Path(value)
        if not path.is_absolute():
            continue  # already a name
        try:
            name = path.resolve().relative_to(root).as_posix()
        except ValueError:
            # Outside today's ARTIFACT_DIR (moved since): keep the layout's last two parts,
            # portfolio-N/file.pt; an operator copies the files into the storage.
            name = "/".join(path.parts[-2:])
        ModelVersion.objects.filter(pk=pk).update(artifact_name=name)


def names_to_paths(apps, schema_editor):
    ModelVersion = apps.get_model("scoring", "ModelVersion")
    root = _root()
    for pk, value in ModelVersion.objects.exclude(artifact_name="").values_list("pk", "artifact_name"):
        if not Path(value).is_absolute():
            ModelVersion.objects.filter(pk=pk).update(artifact_name=str(root / value))


class Migration(migrations.Migration):
    dependencies = [("scoring", "0025_model_version_screen_and_validations")]

    operations = [
        migrations.RenameField("modelversion", "artifact_path", "artifact_name"),
        migrations.AlterField(
            model_name="modelversion",
            name="artifact_name",
            field=models.CharField(
                blank=True,
                help_text="the model file's name in the artifacts storage (scoring/storage.py)",
                max_length=500,
            ),
        ),
        migrations.AlterField(
            model_name="modelversion",
            name="background_sha256",
            field=models.CharField(
                blank=True,
                help_text="SHA-256 of the explainer's reference sample (artifact name + .background.npz)",
                max_length=64,
            ),
        ),
        migrations.RunPython(paths_to_names, names_to_paths),
    ]
