from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.management.commands._progress import ProgressBar
from scoring.services.demo import DemoError, synthetic_hard_load, synthetic_load


class Command(ServiceCommand):
    help = (
        "Generate seeded synthetic applicants with 24-month repayment histories and outcomes (known risk signal: "
        "see models/synthetic.py), write them to Parquet files under var/generated/, and import them into a "
        "portfolio (created with the synthetic schema if missing) through the validating ingestion service."
    )

    def add_arguments(self, parser):
        parser.add_argument("--portfolio", required=True)
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--sex-income-gap", type=float, default=0.0,
                            help="draw women's log-income lower by this much (a fairness test case)")  # fmt: skip
        parser.add_argument("--hard", action="store_true",
                            help="the hard mode (models/synthetic.py generate_hard): thresholds, interactions, 1,200 "
                                 "industry codes, vintages, a planted leak, unlabelled recent applications; no "
                                 "history")  # fmt: skip

    def handle(self, *args, **options):
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        bars: dict[str, ProgressBar] = {}

        def progress(done: int, total: int, phase: str) -> None:
            bar = bars.get(phase)
            if bar is None:
                for other in bars.values():
                    other.finish()
                bars.clear()
                bar = bars[phase] = ProgressBar(total, label=phase, stream=self.stderr._out)
            bar.update(done)

        try:
            if options["hard"]:
                jobs = (
                    synthetic_hard_load(
                        name=options["portfolio"], count=options["count"], seed=options["seed"], progress=progress
                    ),
                )
            else:
                jobs = synthetic_load(
                    name=options["portfolio"], count=options["count"], seed=options["seed"],
                    sex_income_gap=options["sex_income_gap"], progress=progress,
                )  # fmt: skip
        except DemoError as exc:
            raise CommandError(str(exc)) from None
        for bar in bars.values():
            bar.finish()
        for job in jobs:
            seconds = (job.finished_at - job.started_at).total_seconds()
            self.stdout.write(
                f"{job.get_kind_display()}: {job.rows_total:,} rows in {seconds:.1f}s "
                f"({job.rows_total / max(seconds, 1e-9):,.0f} rows/s); created {job.rows_created:,}, "
                f"updated {job.rows_updated:,}, unchanged {job.rows_unchanged:,}"
            )
