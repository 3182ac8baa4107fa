"""Set up the application's database role (least privilege); run as the migration role after migrate."""

from django.core.management.base import BaseCommand, CommandError

from scoring.services.database_roles import app_role_grant
from scoring.services.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Grant the application's PostgreSQL role what the service needs and no more: it owns nothing, so "
        "it cannot disable the audit log's triggers; on the audit tables it may only read, append and seal. "
        "Run it as the migration role (the owner) after every migrate."
    )

    def add_arguments(self, parser):
        parser.add_argument("role", help="the application's role (it must exist and own nothing)")

    def handle(self, *args, role, **options):
        try:
            statements = app_role_grant(role=role)
        except ServiceError as error:
            raise CommandError(error.message) from error
        self.stdout.write(self.style.SUCCESS(f"role {role}: {len(statements)} grants applied"))
