"""Events the audit log records by itself: sign-in and sign-out, and changes to the
schedules that keep the log sealed and signed."""

from __future__ import annotations

# The beat schedules the audit log depends on: disabling or deleting one is itself audited
# (through the admin's form, its bulk actions or any code: all of them touch PeriodicTasks).
AUDIT_TASKS = ("scoring.tasks.audit_seal", "scoring.tasks.audit_checkpoint")
SCHEDULE_ACTIONS = ("audit.schedule_enabled", "audit.schedule_disabled", "audit.schedule_deleted")


def _on_login(sender, request, user, **kwargs) -> None:
    from scoring.audit.events import audit_record

    audit_record(action="login", actor=user, request=request)


def _on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django has already masked secrets in ``credentials``; only the attempted user
    # name is kept (it may be a typo or someone else's name, which is what an
    # auditor looking at password guessing needs), never anything else given.
    from django.contrib.auth import get_user_model

    from scoring.audit.events import audit_record

    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or ""
    audit_record(action="login_failed", request=request, outcome="failure", actor_username=str(username))


def _on_logout(sender, request, user, **kwargs) -> None:
    from scoring.audit.events import audit_record

    if user is not None:
        audit_record(action="logout", actor=user, request=request)


def audit_schedules_reconcile(*, request=None) -> None:
    """Record each audit schedule whose state (enabled, disabled, deleted) differs from
    the last state recorded for it. Stateless: the log itself holds the last state, so
    bulk updates that send no per-row signal are caught as well."""
    from django_celery_beat.models import PeriodicTask

    from scoring.audit.events import audit_record
    from scoring.models import AuditEvent

    present = {row["name"]: row for row in PeriodicTask.objects.filter(task__in=AUDIT_TASKS).values()}
    recorded: dict[str, str] = {}
    for action, details in (
        AuditEvent.objects.filter(action__in=SCHEDULE_ACTIONS, object_type="periodic_task")
        .order_by("id")
        .values_list("action", "details")
    ):
        recorded[details.get("name", "")] = action
    for name, row in present.items():
        state = "audit.schedule_enabled" if row["enabled"] else "audit.schedule_disabled"
        # Nothing recorded yet means "enabled as migrated": only a change is news.
        if recorded.get(name, "audit.schedule_enabled") != state:
            audit_record(
                action=state,
                object_type="periodic_task",
                object_ids=[row["id"]],
                details={"name": name, "task": row["task"]},
                request=request,
            )
    for name, last in recorded.items():
        if name not in present and last != "audit.schedule_deleted":
            audit_record(
                action="audit.schedule_deleted", object_type="periodic_task", details={"name": name}, request=request
            )


def _schedule_changed(sender, instance, **kwargs) -> None:
    from django.db import transaction

    from scoring.audit.events import current_request

    # After the change commits, so the reconciliation reads the new state; by then the
    # request may be over, so its user is taken now.
    request = current_request.get()
    transaction.on_commit(lambda: audit_schedules_reconcile(request=request))


def _schedule_deleted(sender, instance, **kwargs) -> None:
    if instance.task in AUDIT_TASKS:
        from scoring.audit.events import audit_record

        audit_record(
            action="audit.schedule_deleted",
            object_type="periodic_task",
            object_ids=[instance.pk],
            details={"name": instance.name, "task": instance.task},
        )


def audit_signals_connect() -> None:
    """Called once from the app's ready()."""
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
    from django.db.models.signals import post_delete, post_save
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    user_logged_in.connect(_on_login, dispatch_uid="scoring.audit.login")
    user_login_failed.connect(_on_login_failed, dispatch_uid="scoring.audit.login_failed")
    user_logged_out.connect(_on_logout, dispatch_uid="scoring.audit.logout")
    # django_celery_beat touches PeriodicTasks on every change of a schedule, bulk ones too.
    post_save.connect(_schedule_changed, sender=PeriodicTasks, dispatch_uid="scoring.audit.schedules")
    post_delete.connect(_schedule_deleted, sender=PeriodicTask, dispatch_uid="scoring.audit.schedule_deleted")
