from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ScoringConfig(AppConfig):
    name = "scoring"
    verbose_name = "Credit risk scoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from scoring.roles import roles_ensure

        # After every migrate (and every test-database flush): the role groups exist with
        # exactly the permissions scoring/roles.py declares.
        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="scoring.roles_ensure")

        from scoring.audit import audit_signals_connect

        audit_signals_connect()

        from scoring.services.users import users_audit_connect

        # Every change of a user, group or beat schedule, whatever made it, enters the audit log.
        users_audit_connect()

        from scoring.caches import cache_signals_connect

        # Every change of a grant, role, token, champion, policy or reason text tells the
        # per-process caches of every web process (scoring/caches.py).
        cache_signals_connect()

        from scoring.services.policy import policy_signals_connect

        # A new portfolio gets its starting policy version in the transaction that creates it.
        policy_signals_connect()
