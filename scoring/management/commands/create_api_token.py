"""Create an API token for a user and print its key (once; only a hash is stored)."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.utils import timezone

from scoring.management.base import ServiceCommand
from scoring.models import Portfolio
from scoring.services.tokens import TokenError, api_token_create


class Command(ServiceCommand):
    help = (
        "Create an API token acting as USERNAME, optionally narrowed to some portfolios, and print its key on "
        "stdout (alone, so `TOKEN=$(python manage.py create_api_token analyst)` works). The key is shown once."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="what uses the token (shown in the admin)")
        parser.add_argument(
            "--portfolio",
            action="append",
            default=[],
            help="narrow the token to this portfolio (id or name); repeat for several",
        )
        parser.add_argument("--expires-days", type=int, default=None, help="days until the token expires")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        portfolios = [self._portfolio(ref) for ref in options["portfolio"]]
        expires_at = None
        if options["expires_days"] is not None:
            if options["expires_days"] < 1:
                raise CommandError("--expires-days must be at least 1.")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        try:
            token, key = api_token_create(user=user, name=options["name"], portfolios=portfolios, expires_at=expires_at)
        except TokenError as exc:
            raise CommandError(str(exc)) from None
        scope = ", ".join(p.name for p in portfolios) or "every portfolio granted to the user"
        expiry = f"expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "no expiry"
        self.stderr.write(f"Token {token.name!r} #{token.pk} for {user.username} ({scope}; {expiry}). Key, shown once:")
        self.stdout.write(key)

    @staticmethod
    def _portfolio(ref: str) -> Portfolio:
        found = Portfolio.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        found = found or Portfolio.objects.filter(name=ref).first()
        if found is None:
            raise CommandError(f"No portfolio {ref!r} (id or name).")
        return found
