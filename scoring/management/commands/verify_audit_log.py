"""Walk the audit log's hash chain and its signed checkpoints; exit non-zero on the first broken link."""

from django.core.management.base import BaseCommand, CommandError

from scoring.audit import append_only_expected, append_only_installed, audit_checkpoint_create, audit_log_verify


class Command(BaseCommand):
    help = (
        "Verify the audit log: every event's hash and link to the one before, no gap in the sequence, "
        "every checkpoint's signature and the head it signed. On success, sign the current head."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-checkpoint", action="store_true", help="only verify; do not sign the verified head afterwards"
        )
        parser.add_argument("--chunk-size", type=int, default=5000, help="events read per query")

    def handle(self, *args, **options):
        missing = append_only_expected() - append_only_installed()
        if missing:
            # Not a broken chain by itself, but nothing stops UPDATE/DELETE now: say so loudly.
            self.stderr.write(self.style.WARNING(f"append-only triggers missing: {', '.join(sorted(missing))}"))
        result = audit_log_verify(
            chunk_size=options["chunk_size"],
            progress=lambda n: self.stderr.write(f"  {n:,} events checked"),
        )
        if not result.ok:
            raise CommandError(
                f"audit log BROKEN at event {result.broken_id}: {result.problem} "
                f"({result.events_checked} events before it verified)"
            )
        message = (
            f"audit log OK: {result.events_checked} events checked, {result.checkpoints_verified} checkpoints verified"
        )
        if not options["no_checkpoint"] and result.last_verified is not None:
            # The head just verified, not whatever arrived since.
            checkpoint = audit_checkpoint_create(head=result.last_verified)
            if checkpoint is not None:
                message += f"; new checkpoint signed at event {checkpoint.last_event_id}"
        self.stdout.write(self.style.SUCCESS(message))
