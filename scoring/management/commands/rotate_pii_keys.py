"""Re-encrypt every applicant's PII under the newest key of PII_ENCRYPTION_KEYS."""

from django.conf import settings
from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.models import ApplicantPII
from scoring.services.pii import PIIDecryptionError, pii_rotate


class Command(ServiceCommand):
    help = (
        "Re-encrypt all PII with the first key of PII_ENCRYPTION_KEYS (put the new key first, run this, "
        "then remove the old key). Batched; safe to stop and run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, **options):
        total = ApplicantPII.objects.count()
        self.stderr.write(
            f"re-encrypting {total} PII rows under the newest of {len(settings.PII_ENCRYPTION_KEYS)} keys"
        )
        try:
            done = pii_rotate(
                batch_size=options["batch_size"],
                progress=lambda n: self.stderr.write(f"  {n}/{total}") if n % 50_000 < options["batch_size"] else None,
            )
        except PIIDecryptionError as error:
            raise CommandError(f"{error}: is an old key missing from PII_ENCRYPTION_KEYS?") from None
        from scoring.services.webhooks import webhook_secrets_rotate_keys

        try:
            secrets_done = webhook_secrets_rotate_keys()  # webhook secrets are kept under the same keys
        except PIIDecryptionError as error:
            raise CommandError(f"{error}: is an old key missing from PII_ENCRYPTION_KEYS?") from None
        self.stdout.write(
            self.style.SUCCESS(f"{done} PII rows and {secrets_done} webhook secrets re-encrypted under the newest key")
        )
