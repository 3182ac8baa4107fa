"""``manage.py infer_schema FILE``: propose a schema for a file, to review before importing."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from scoring.services.errors import ServiceError
from scoring.services.ingestion import IngestionError
from scoring.services.ingestion.inference import SAMPLE_ROWS, TOP_CATEGORIES, schema_infer


class Command(BaseCommand):
    help = (
        "Read a sample of a CSV or Parquet file and propose a schema: types (money and date formats "
        "detected), the id, features, personal data, target candidates, categories with their "
        "frequencies. Writes the schema JSON (to --out or stdout) and explains each column on stderr."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--name", help="the schema's name (default: from the file name)")
        parser.add_argument("--out", help="write the schema JSON here instead of stdout")
        parser.add_argument("--sample-rows", type=int, default=SAMPLE_ROWS)
        parser.add_argument("--top", type=int, default=TOP_CATEGORIES, help="categories kept before 'other'")
        parser.add_argument("--encoding", default="utf-8")

    def handle(self, *args, **options):
        try:
            result = schema_infer(
                path=options["file"], name=options["name"], encoding=options["encoding"],
                sample_rows=options["sample_rows"], top=options["top"],
            )  # fmt: skip
        except (IngestionError, ServiceError) as exc:
            raise CommandError(str(exc)) from None
        text = json.dumps(result["schema"], indent=2, ensure_ascii=False) + "\n"
        if options["out"]:
            Path(options["out"]).write_text(text, encoding="utf-8")
        else:
            self.stdout.write(text, ending="")
        self.stderr.write(f"Proposed from {result['rows_sampled']:,} rows; review each column:")
        for profile in result["columns"]:
            proposed = profile["proposed"]
            self.stderr.write(
                f"  {profile['name']}: {proposed['role']} {proposed.get('type', '')} "
                f"({profile['distinct']:,} distinct, {profile['missing']:,} missing) - {'; '.join(profile['reasons'])}"
            )
        for item in result["schema"].get("review", []):
            self.stderr.write(self.style.WARNING(f"  review: {item}"))
