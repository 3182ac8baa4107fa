from scoring.management.base import ServiceCommand
from scoring.services.jobs import MODELS, job_act


class Command(ServiceCommand):
    help = (
        "Retry a failed training, tuning study or import (its worker died, or it failed), or cancel a queued or "
        "running one: `job retry training 12`, `job cancel import 7`. The supervisor marks jobs whose worker is "
        "gone as failed, with the reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["retry", "cancel"])
        parser.add_argument("kind", choices=sorted(MODELS))
        parser.add_argument("id", type=int)

    def handle(self, *args, **options):
        obj = job_act(action=options["action"], kind=options["kind"], pk=options["id"])
        self.stdout.write(f"{options['kind'].title()} {obj.pk}: {obj.status}")
