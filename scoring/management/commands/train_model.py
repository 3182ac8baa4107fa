import json
import time

from django.core.management.base import CommandError

from models.families import FAMILIES
from scoring.management.base import ServiceCommand
from scoring.management.commands._acting import acting_user, add_as_argument
from scoring.management.commands._progress import ProgressBar, refresh_patiently
from scoring.models import ModelVersion, Portfolio
from scoring.roles import TRAIN
from scoring.services.training import (
    model_group_create,
    model_group_training_start,
    model_training_start,
    model_version_create,
    model_version_train,
)


def metrics_table(version: ModelVersion) -> str:
    rows = [("split", "n", "AUC", "Gini", "KS", "Brier", "log loss", "bad rate", "mean PD")]
    for name in ("train", "validation", "test"):
        m = version.metrics.get(name)
        if m:
            rows.append(
                (name, m["n"], m["auc"], m["gini"], m["ks"], m["brier"], m["log_loss"], m["bad_rate"], m["mean_pd"])
            )
    base = version.baseline_metrics.get("test")
    if base:
        rows.append(("baseline LR (test)", base["n"], base["auc"], base["gini"], base["ks"], base["brier"], base["log_loss"],
                     base["bad_rate"], base["mean_pd"]))  # fmt: skip
    out = []
    for row in rows:
        cells = [row[0].ljust(20)] + [(f"{v:.4f}" if isinstance(v, float) else str(v)).rjust(9) for v in row[1:]]
        out.append(" ".join(cells))
    return "\n".join(out)


class Command(ServiceCommand):
    help = (
        "Train a credit model of a portfolio: enqueue it on the `train` queue and follow its progress "
        "(a worker must be running), or run it in this process with --sync."
    )

    def add_arguments(self, parser):
        add_as_argument(parser, what="who trains the model")
        parser.add_argument("--portfolio", required=True, help="portfolio name")
        parser.add_argument("--kind", action="append", required=True, choices=list(FAMILIES),
                            help="model family; repeat it (--kind mlp --kind trees) to train several on the same "
                            "split, one training group compared by the leaderboard")  # fmt: skip
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON",
                            help='hyper-parameter, e.g. --param max_epochs=20 --param "hidden=[32,16]"')  # fmt: skip
        parser.add_argument("--sync", action="store_true", help="train in this process instead of on a worker")
        parser.add_argument("--no-wait", action="store_true", help="enqueue and return at once")
        parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for a worker")

    def handle(self, *args, **options):
        try:
            portfolio = Portfolio.objects.get(name=options["portfolio"])
        except Portfolio.DoesNotExist:
            raise CommandError(f"No portfolio named {options['portfolio']!r}.") from None
        user = acting_user(options["acting_user"], portfolio=portfolio, perm=TRAIN)
        params = {}
        for item in options["param"]:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--param {item!r}: use NAME=VALUE")
            try:
                params[name] = json.loads(value)
            except json.JSONDecodeError:
                params[name] = value
        if len(options["kind"]) > 1:
            return self._group(portfolio, user, params, options)
        options["kind"] = options["kind"][0]
        try:
            if options["sync"]:
                version = model_version_create(
                    portfolio=portfolio, kind=options["kind"], seed=options["seed"], hyperparameters=params,
                    requested_by=user,
                )  # fmt: skip
            else:
                version = model_training_start(
                    portfolio=portfolio, kind=options["kind"], seed=options["seed"], hyperparameters=params,
                    requested_by=user,
                )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Model version {version.version} ({version.kind}) of {portfolio}: id {version.pk}")

        max_epochs = version.hyperparameters.get("max_epochs") or 60
        bar = ProgressBar(max_epochs, label="training", unit="epochs", stream=self.stderr._out)
        if options["sync"]:
            model_version_train(
                model_version_id=version.pk,
                on_epoch=lambda e, loss, auc: bar.update(e, suffix=f"loss {loss:.4f} val AUC {auc:.4f}", force=True),
            )
        elif options["no_wait"]:
            self.stdout.write("Enqueued; follow it with the API or the portal.")
            return
        else:
            deadline = time.monotonic() + options["timeout"]
            while True:
                refresh_patiently(version)
                progress = version.progress or {}
                if "epoch" in progress:
                    bar.update(
                        progress["epoch"], suffix=f"loss {progress['train_loss']:.4f} val AUC {progress['val_auc']:.4f}"
                    )
                if version.status not in (ModelVersion.STATUS_QUEUED, ModelVersion.STATUS_TRAINING):
                    break
                if time.monotonic() > deadline:
                    raise CommandError("Timed out waiting for a worker: is one running on the `train` queue?")
                time.sleep(0.5)
        version.refresh_from_db()
        bar.finish(
            (version.progress or {}).get("epoch", 0),
            suffix="(stopped early)" if version.progress.get("epoch", 0) < max_epochs else "",
        )
        if version.status == ModelVersion.STATUS_FAILED:
            raise CommandError(
                f"Training failed: {version.error}\nRetry it with: manage.py job retry training {version.pk}"
            )
        self.stdout.write(
            f"Trained on {version.device}: {version.training_rows:,} applicants, artifact sha256 {version.artifact_sha256}"
        )
        self.stdout.write(metrics_table(version))

    def _group(self, portfolio, user, params, options):
        """Several families on the same split; --param values go to every family that declares them."""
        from models.families import family_of

        per_kind = {kind: {n: v for n, v in params.items() if n in family_of(kind).space()} for kind in options["kind"]}
        unknown = set(params) - {n for values in per_kind.values() for n in values}
        if unknown:
            raise CommandError(f"--param {', '.join(sorted(unknown))}: no family asked for declares it")
        create = model_group_create if options["sync"] else model_group_training_start
        try:
            versions = create(
                portfolio=portfolio, kinds=options["kind"], seed=options["seed"], hyperparameters=per_kind,
                requested_by=user,
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Training group {versions[0].training_group} of {portfolio}:")
        for version in versions:
            self.stdout.write(f"  model version {version.version} ({version.kind}): id {version.pk}")
        if not options["sync"]:
            self.stdout.write(
                "Enqueued; follow them with the API or the portal (the model page shows the leaderboard)."
            )
            return
        for version in versions:
            model_version_train(model_version_id=version.pk)
            version.refresh_from_db()
            if version.status == ModelVersion.STATUS_FAILED:
                raise CommandError(f"Training v{version.version} ({version.kind}) failed: {version.error}")
            self.stdout.write(f"v{version.version} ({version.kind}):\n{metrics_table(version)}")
