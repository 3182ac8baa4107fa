import time

from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.management.commands._progress import ProgressBar, refresh_patiently
from scoring.models import BatchRun, ModelVersion, Portfolio
from scoring.services.batch import (
    DEFAULT_CHUNK,
    BatchError,
    batch_run_cancel,
    batch_run_create,
    batch_run_progress,
    batch_run_resume,
    batch_run_start,
    score_chunk_run,
)
from scoring.services.scoring import ScoringError


class Command(ServiceCommand):
    help = (
        "Score every applicant of a portfolio with its champion (or --model-version): a batch run split into "
        "chunks on the `score` queue, with a progress bar. --resume RUN continues a cancelled or interrupted run; "
        "--cancel RUN stops one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--portfolio")
        parser.add_argument("--model-version", type=int, help="ModelVersion id (approved); default: the champion")
        parser.add_argument("--challenger", type=int, help="ModelVersion id to shadow-score the same rows")
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK)
        parser.add_argument("--sync", action="store_true", help="score in this process instead of on workers")
        parser.add_argument("--no-wait", action="store_true")
        parser.add_argument("--resume", type=int, metavar="RUN")
        parser.add_argument("--cancel", type=int, metavar="RUN")

    def handle(self, *args, **options):
        if options["cancel"]:
            run = batch_run_cancel(run=self._run(options["cancel"]))
            self.stdout.write(f"Run {run.pk}: {run.status}")
            return
        if options["resume"]:
            run = batch_run_resume(run=self._run(options["resume"]))
        else:
            run = self._start(options)
        self.stdout.write(
            f"Run {run.pk}: {run.rows_total:,} applicants in {run.chunks_total} chunks, model {run.model_version}"
        )
        if options["no_wait"]:
            return
        bar = ProgressBar(run.rows_total, label=f"run {run.pk}", stream=self.stderr._out)
        if options["sync"]:
            for chunk_id in run.chunks.exclude(status="done").values_list("id", flat=True):
                score_chunk_run(chunk_id=chunk_id)
                run.refresh_from_db()
                bar.update(run.rows_done)
        while True:
            refresh_patiently(run)
            bar.update(run.rows_done)
            if run.status in (BatchRun.STATUS_DONE, BatchRun.STATUS_CANCELLED, BatchRun.STATUS_FAILED):
                break
            time.sleep(0.5)
        bar.finish(run.rows_done)
        progress = batch_run_progress(run)
        self.stdout.write(
            f"Run {run.pk} {run.status}: {progress['rows_done']:,}/{progress['rows_total']:,} rows, "
            f"{progress['rows_per_second']:,.0f} rows/s"
        )
        if run.decisions_differ is not None:
            self.stdout.write(f"Challenger decisions differing from the champion's: {run.decisions_differ:,}")

    def _run(self, pk: int) -> BatchRun:
        try:
            return BatchRun.objects.get(pk=pk)
        except BatchRun.DoesNotExist:
            raise CommandError(f"No batch run {pk}.") from None

    def _start(self, options) -> BatchRun:
        if not options["portfolio"]:
            raise CommandError("--portfolio is required to start a run")
        try:
            portfolio = Portfolio.objects.get(name=options["portfolio"])
            version = ModelVersion.objects.get(pk=options["model_version"]) if options["model_version"] else None
            challenger = ModelVersion.objects.get(pk=options["challenger"]) if options["challenger"] else None
        except (Portfolio.DoesNotExist, ModelVersion.DoesNotExist) as exc:
            raise CommandError(str(exc)) from None
        start = batch_run_create if options["sync"] else batch_run_start
        try:
            return start(
                portfolio=portfolio, model_version=version, challenger=challenger, chunk_size=options["chunk_size"]
            )
        except (ScoringError, BatchError) as exc:
            raise CommandError(str(exc)) from None
