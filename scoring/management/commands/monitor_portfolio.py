from django.core.management.base import CommandError

from scoring.management.base import ServiceCommand
from scoring.models import BatchRun, ModelVersion, Portfolio
from scoring.services.monitoring import monitoring_run


class Command(ServiceCommand):
    help = (
        "Monitor a portfolio's champion (or --model-version): population stability (PSI of the score, CSI of "
        "each feature against the training sample), an outcome backtest by monthly cohort and a fairness report "
        "per protected attribute. On the scores of --run RUN, or on the current applicants scored now. A failed "
        "report is logged, audited and mailed to the portfolio's validators (--no-alert: only stored)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--portfolio", required=True, help="portfolio name")
        parser.add_argument("--model-version", type=int, help="ModelVersion id; default: the champion")
        parser.add_argument("--run", type=int, metavar="RUN", help="a batch run whose scores to monitor")
        parser.add_argument("--max-rows", type=int, help="sample at most this many applicants")
        parser.add_argument("--no-alert", action="store_true", help="store the reports without alerting")

    def handle(self, *args, **options):
        try:
            portfolio = Portfolio.objects.select_related("schema").get(name=options["portfolio"])
        except Portfolio.DoesNotExist:
            raise CommandError(f"No portfolio named {options['portfolio']!r}.") from None
        versions = ModelVersion.objects.filter(portfolio=portfolio)
        if options["model_version"]:
            version = versions.filter(pk=options["model_version"]).first()
            if version is None:
                raise CommandError(f"Model version {options['model_version']} is not one of {portfolio.name}'s.")
        else:
            version = versions.filter(status=ModelVersion.STATUS_CHAMPION).first()
            if version is None:
                raise CommandError(f"{portfolio.name} has no champion: name one with --model-version.")
        run = None
        if options["run"]:
            run = BatchRun.objects.filter(pk=options["run"], portfolio=portfolio).first()
            if run is None:
                raise CommandError(f"Batch run {options['run']} is not one of {portfolio.name}'s.")
        reports = monitoring_run(
            portfolio=portfolio, model_version=version, run=run, alert=not options["no_alert"],
            max_rows=options["max_rows"],
        )  # fmt: skip
        self.stdout.write(f"{portfolio.name} model v{version.version} ({version.kind}), {reports[0].rows:,} applicants")
        for report in reports:
            self.stdout.write(f"  {report.get_kind_display():<22} {report.status.upper():<6} report #{report.pk}")
            for alert in report.alerts:
                self.stdout.write(f"      {alert}")
