import json

from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.models import Score
from scoring.services.replay import replay_many


class Command(ServiceCommand):
    help = "Recompute stored scores from their model version and stored input, and show whether they are identical."

    def add_arguments(self, parser):
        parser.add_argument("score_ids", nargs="+", type=int, metavar="SCORE_ID")

    def handle(self, *args, **options):
        scores = list(
            Score.objects.select_related("model_version__schema", "model_version__portfolio").filter(
                pk__in=options["score_ids"]
            )
        )
        missing = set(options["score_ids"]) - {s.pk for s in scores}
        if missing:
            raise CommandError(f"No score with id {sorted(missing)}")
        failures = 0
        by_version: dict[int, list[Score]] = {}
        for score in scores:
            by_version.setdefault(score.model_version_id, []).append(score)
        for group in by_version.values():
            for replay in replay_many(group):
                s = replay.score
                verdict = "IDENTICAL" if replay.identical else "DIFFERENT"
                failures += not replay.identical
                self.stdout.write(
                    f"score {s.pk} (model {s.model_version}, applicant {s.applicant_id}): {verdict}\n"
                    f"  replayed {replay.policy_note}\n"
                    f"  stored:   PD {s.pd:.10f}  score {s.score:.6f}  {s.decision}\n"
                    f"  replayed: PD {replay.pd:.10f}  score {replay.points:.6f}  {replay.decision}\n"
                    f"  reasons:  {json.dumps([r['feature'] for r in replay.reasons])}"
                    + ("" if replay.identical else f"\n  differences: {replay.differences()}")
                )
        if failures:
            raise CommandError(f"{failures} of {len(scores)} scores did not replay identically")
