"""The base of the project's management commands: a service error (any
``scoring.services.errors.ServiceError``) ends the command as a ``CommandError`` with
its message (exit status 1, no traceback), mapped here once for every command."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from scoring.services.errors import ServiceError


class ServiceCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except ServiceError as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from exc
