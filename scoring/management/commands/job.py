from django.core.management.base import BaseCommand, CommandError

from scoring.services.errors import ServiceError
from scoring.services.jobs import MODELS, job_act


class Command(BaseCommand):
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
        try:
            obj = job_act(action=options["action"], kind=options["kind"], pk=options["id"])
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{options['kind'].title()} {obj.pk}: {obj.status}")
