from scoring.management.base import ServiceCommand
from scoring.services.supervisor import supervise, supervisor_schedule_ensure


class Command(ServiceCommand):
    help = (
        "Run the supervisor once: re-queue stale and lost chunks, finish complete runs, mark trainings, tunings and "
        "imports whose worker is gone as failed. Workers run it on their own timer and beat every minute; "
        "--ensure-schedule (run by docker/start/beat) makes sure beat's schedule of it exists and is enabled."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ensure-schedule", action="store_true", help="only ensure beat's schedule, then exit")

    def handle(self, *args, **options):
        if options["ensure_schedule"]:
            created = supervisor_schedule_ensure()
            self.stdout.write("Supervisor schedule " + ("created" if created else "present and enabled"))
            return
        for kind, count in supervise().items():
            self.stdout.write(f"{kind}: {count}")
