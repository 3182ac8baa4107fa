"""Everything held about one applicant, as JSON (a data-subject access request)."""

import json
from pathlib import Path

from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.models import Applicant
from scoring.services.pii import applicant_data_export


class Command(ServiceCommand):
    help = "Write everything held about one applicant (features, PII in clear, history, outcomes, scores) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--portfolio", required=True, help="portfolio name")
        parser.add_argument("--external-id", required=True, help="the applicant's id in the lender's files")
        parser.add_argument("--output", help="file to write (default: standard output); created readable by you only")

    def handle(self, *args, **options):
        applicant = (
            Applicant.objects.select_related("portfolio", "schema")
            .filter(portfolio__name=options["portfolio"], external_id=options["external_id"])
            .first()
        )
        if applicant is None:
            raise CommandError(f"no applicant {options['external_id']!r} in portfolio {options['portfolio']!r}")
        text = json.dumps(applicant_data_export(applicant=applicant), indent=2, ensure_ascii=False, default=str)
        if options["output"]:
            path = Path(options["output"])
            path.touch(mode=0o600, exist_ok=True)  # personal data: not world-readable
            path.write_text(text + "\n", encoding="utf-8")
            self.stderr.write(f"wrote {path}")
        else:
            self.stdout.write(text)
