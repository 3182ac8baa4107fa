"""Seal pending events, then walk the audit log's hash chain, seals and signed heads;
exit non-zero on the first broken link, a missing or disabled append-only trigger, or
an event left unsealed beyond the window."""

from django.core.management.base import BaseCommand, CommandError

from scoring.audit import append_only_problems, audit_checkpoint_create, audit_log_verify, head_file
from scoring.services.database_roles import connection_privilege_problems


class Command(BaseCommand):
    help = (
        "Verify the audit log: the append-only triggers are in place; pending events are sealed; every "
        "event's hash and link to the one before, no gap in the sequence, every seal's Merkle root, link "
        "and signature, every checkpoint, and the newest signed head kept outside the database. On "
        "success, sign the current head."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-checkpoint", action="store_true", help="only verify; do not sign the verified head afterwards"
        )
        parser.add_argument(
            "--no-seal", action="store_true", help="do not seal pending events first (a read-only check)"
        )
        parser.add_argument("--chunk-size", type=int, default=5000, help="events read per query")

    def handle(self, *args, **options):
        problems = append_only_problems()
        if problems:
            # Nothing stops UPDATE/DELETE now: the log cannot be trusted from here on.
            raise CommandError("audit log UNPROTECTED: " + "; ".join(problems))
        for problem in connection_privilege_problems():
            # Not a broken log, but this connection is the kind of role that could break it.
            self.stderr.write(self.style.WARNING(f"warning: not least privilege: {problem}"))
        result = audit_log_verify(
            chunk_size=options["chunk_size"],
            progress=lambda n: self.stderr.write(f"  {n:,} events checked"),
            seal=not options["no_seal"],
        )
        if not result.ok:
            where = f" at event {result.broken_id}" if result.broken_id is not None else ""
            raise CommandError(
                f"audit log BROKEN{where}: {result.problem} ({result.events_checked} events before it verified)"
            )
        message = (
            f"audit log OK: {result.events_checked} events checked, {result.seals_verified} seals and "
            f"{result.checkpoints_verified} checkpoints verified"
        )
        if result.head_file_events is not None:
            message += f", newest head outside the database ({head_file()}) at seq {result.head_file_events}"
        if not options["no_checkpoint"] and result.last_verified is not None:
            # The head just verified, not whatever arrived since.
            checkpoint = audit_checkpoint_create(head=result.last_verified)
            if checkpoint is not None:
                message += f"; new checkpoint signed at event {checkpoint.last_event_id}"
        self.stdout.write(self.style.SUCCESS(message))
