import time

from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.management.commands._acting import acting_user, add_as_argument
from scoring.management.commands._progress import ProgressBar
from scoring.management.commands.train_model import metrics_table
from scoring.models import Portfolio
from scoring.roles import TRAIN
from scoring.services.tuning import tuning_study_create, tuning_study_start, tuning_trial_run


class Command(ServiceCommand):
    help = (
        "Tune a model kind of a portfolio with Optuna (study stored in the project database): one task per "
        "trial on the `train` queue, so several workers share a study; the best trial becomes a model version."
    )

    def add_arguments(self, parser):
        add_as_argument(parser, what="who tunes the model")
        parser.add_argument("--portfolio", required=True)
        parser.add_argument("--kind", required=True, choices=["mlp", "cnn"])
        parser.add_argument("--trials", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--sync", action="store_true", help="run the trials in this process, one after another")
        parser.add_argument("--timeout", type=float, default=24 * 3600)

    def handle(self, *args, **options):
        try:
            portfolio = Portfolio.objects.get(name=options["portfolio"])
        except Portfolio.DoesNotExist:
            raise CommandError(f"No portfolio named {options['portfolio']!r}.") from None
        user = acting_user(options["acting_user"], portfolio=portfolio, perm=TRAIN)
        if options["trials"] < 1:
            raise CommandError("--trials must be at least 1")
        start = tuning_study_create if options["sync"] else tuning_study_start
        study = start(
            portfolio=portfolio, kind=options["kind"], n_trials=options["trials"], seed=options["seed"],
            requested_by=user,
        )  # fmt: skip
        self.stdout.write(f"Study {study.study_name}: {study.n_trials} trials")
        bar = ProgressBar(study.n_trials, label="tuning", unit="trials", stream=self.stderr._out)
        deadline = time.monotonic() + options["timeout"]
        while True:
            if options["sync"]:
                tuning_trial_run(study_id=study.pk)
            else:
                time.sleep(1)
            study.refresh_from_db()
            best = f"best val AUC {study.best_value:.4f}" if study.best_value is not None else ""
            bar.update(study.trials_done, suffix=best, force=True)
            if study.status in ("done", "failed") and (study.best_model_version_id or study.status == "failed"):
                break
            if time.monotonic() > deadline:
                raise CommandError("Timed out: are workers running on the `train` queue?")
        bar.finish(study.trials_done)
        if study.status == "failed":
            raise CommandError(f"Tuning failed: {study.error}")
        version = study.best_model_version
        assert version is not None
        self.stdout.write(f"Best parameters: {study.best_params}")
        self.stdout.write(f"Model version {version.version} (id {version.pk}), status {version.status}")
        self.stdout.write(metrics_table(version))
