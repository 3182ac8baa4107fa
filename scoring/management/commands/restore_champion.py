"""Roll back a portfolio's champion from the command line, through the same services as
the API and the portal (``model_version_restore`` / ``champion_restore_previous``):
checked as the acting user, four eyes applied, the reason audited."""

from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.management.commands._acting import acting_user, add_as_argument
from scoring.models import ModelVersion, Portfolio
from scoring.roles import VALIDATE
from scoring.services.registry import champion_restore_previous, model_version_restore


class Command(ServiceCommand):
    help = (
        "Restore the previous champion of a portfolio (or, with --model-version, any retired version that "
        "was approved) as its champion; the current champion retires. A reason is required and audited."
    )

    def add_arguments(self, parser):
        add_as_argument(parser, what="who rolls back (a validator of the portfolio)")
        parser.add_argument("--portfolio", required=True, help="portfolio name")
        parser.add_argument("--reason", required=True, help="why to roll back (kept in the audit log)")
        parser.add_argument(
            "--model-version",
            dest="model_version",
            type=int,
            help="the version number to restore (default: the previous champion)",
        )

    def handle(self, *args, **options):
        try:
            portfolio = Portfolio.objects.get(name=options["portfolio"])
        except Portfolio.DoesNotExist:
            raise CommandError(f"No portfolio named {options['portfolio']!r}.") from None
        user = acting_user(options["acting_user"], portfolio=portfolio, perm=VALIDATE)
        if options["model_version"] is None:
            restored = champion_restore_previous(portfolio=portfolio, user=user, reason=options["reason"])
        else:
            version = ModelVersion.objects.filter(portfolio=portfolio, version=options["model_version"]).first()
            if version is None:
                raise CommandError(f"{portfolio} has no model version {options['model_version']}.")
            restored = model_version_restore(version=version, user=user, reason=options["reason"])
        self.stdout.write(f"Model version {restored.version} ({restored.kind}) is the champion of {portfolio} again.")
