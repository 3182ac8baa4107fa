"""Erase one applicant's personal data (right to erasure)."""

from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.models import Applicant
from scoring.services.pii import applicant_erase


class Command(ServiceCommand):
    help = (
        "Erase an applicant's PII (the encrypted row, and any PII column found in features or score inputs). "
        "The credit decision record (scores, history, outcomes) stays, without PII. Audited with ids only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--portfolio", required=True, help="portfolio name")
        parser.add_argument("--external-id", required=True, help="the applicant's id in the lender's files")

    def handle(self, *args, **options):
        applicant = (
            Applicant.objects.select_related("portfolio")
            .filter(portfolio__name=options["portfolio"], external_id=options["external_id"])
            .first()
        )
        if applicant is None:
            raise CommandError(f"no applicant {options['external_id']!r} in portfolio {options['portfolio']!r}")
        result = applicant_erase(applicant=applicant)
        self.stdout.write(
            self.style.SUCCESS(
                f"erased applicant {applicant.pk}: {result['pii_rows']} PII row, "
                f"{result['applicant_fields']} applicant fields and {result['scores']} score inputs cleaned"
            )
        )
