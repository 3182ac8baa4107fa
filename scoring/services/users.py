"""Users, groups and their rights: the rules of who may change whom, and the audit of
every change.

Rules (``user_change_check``, asked by the admin console and every service below):
an actor who is not a superuser may manage users, roles and grants, but never

- make anyone a superuser, or take it away (``is_superuser``),
- change (or set the password of, or delete) a superuser,
- give a user a role or group, or a direct model permission, that carries a
  right the actor does not hold itself ("a role above their own"). A portfolio
  permission (``scoring.view_portfolio_data``...) is not such a right: it does
  nothing without a grant on a portfolio, and grants are the administrator's
  business (``scoring.services.access``),
- edit the permissions of a role group: they are declared in ``scoring/roles.py``
  and reset after every migrate.

A refusal is recorded (``user.change``/``group.change``, outcome ``denied``, with
what was refused) and raises :class:`EscalationRefused`. The actor ``None`` is an
operator at the shell (management commands): not restricted.

Audit: every change of a user, a group, their memberships and permissions, and of
a Celery beat schedule is an event in the hash-chained log, whatever path made it
(admin, services, ``createsuperuser``/``changepassword``, the shell): model signals
are the one net, connected by :func:`users_audit_connect`. Events carry field names
and flags, never names, e-mails or password hashes. A service that records a more
specific event itself (``scoring.services.access.user_role_add``) wraps its change
in :func:`recorded_by_service` so the net does not record it twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from scoring.audit import audit_record
from scoring.roles import PORTFOLIO_PERMS, ROLES
from scoring.services.errors import ForbiddenError


class EscalationRefused(ForbiddenError):
    """The change would give someone more power than the actor holds (or touch a superuser)."""

    code = "escalation_refused"


# Fields whose change is recorded; last_login (written at every sign-in) and date_joined are not.
USER_AUDITED_FIELDS = ("username", "password", "email", "first_name", "last_name", "is_active", "is_staff",
                       "is_superuser")  # fmt: skip
USER_FLAGS = ("is_active", "is_staff", "is_superuser")
# What the beat scheduler writes at every run of a task: not a change of the schedule.
SCHEDULE_BOOKKEEPING = {"last_run_at", "total_run_count", "date_changed"}
_PORTFOLIO_PERM_NAMES = frozenset(f"scoring.{perm}" for perm in PORTFOLIO_PERMS)

_service_recording: ContextVar[bool] = ContextVar("scoring_users_service_recording", default=False)


@contextlib.contextmanager
def recorded_by_service() -> Iterator[None]:
    """The change inside records its own audit event; the signal net stays quiet."""
    token = _service_recording.set(True)
    try:
        yield
    finally:
        _service_recording.reset(token)


# --- Rules ------------------------------------------------------------------------------
def perm_names(perms: Iterable[Permission]) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in perms}


def _group_perm_names(groups: Iterable[Group]) -> set[str]:
    return perm_names(Permission.objects.filter(group__in=list(groups)).select_related("content_type"))


def grantable_by(actor) -> set[str] | None:
    """The model permissions ``actor`` may hand out (None: any, for a superuser or the shell)."""
    if actor is None or actor.is_superuser:
        return None
    return set(actor.get_all_permissions()) | _PORTFOLIO_PERM_NAMES


def user_change_problems(
    *,
    actor,
    user,
    is_superuser: bool | None = None,
    groups: Iterable[Group] | None = None,
    user_permissions: Iterable[Permission] | None = None,
    changing: bool = True,
) -> list[str]:
    """What ``actor`` may not do in this change of ``user`` ([] when it is allowed).
    ``None`` arguments are not being changed."""
    allowed = grantable_by(actor)
    if allowed is None:
        return []
    problems = []
    User = get_user_model()
    stored = User.objects.filter(pk=user.pk).values("is_superuser").first() if user.pk else None
    if changing and stored and stored["is_superuser"]:
        problems.append("a superuser can be changed by a superuser only")
    if is_superuser is not None and bool(is_superuser) != bool(stored and stored["is_superuser"]):
        problems.append("superuser status can be given or taken by a superuser only")
    if groups is not None:
        held = set(user.groups.all()) if user.pk else set()
        for group in sorted(set(groups) - held, key=lambda g: g.name):
            beyond = sorted(_group_perm_names([group]) - allowed)
            if beyond:
                problems.append(f"the {group.name!r} group carries rights you do not hold: {', '.join(beyond)}")
    if user_permissions is not None:
        held_perms = set(user.user_permissions.all()) if user.pk else set()
        beyond = sorted(perm_names(set(user_permissions) - held_perms) - allowed)
        if beyond:
            problems.append(f"permissions you do not hold cannot be given: {', '.join(beyond)}")
    return problems


def _refuse(action: str, *, actor, object_type: str, object_id, problems: list[str]) -> None:
    audit_record(
        action=action, actor=actor, outcome="denied", object_type=object_type,
        object_ids=[object_id] if object_id else [], details={"refused": problems},
    )  # fmt: skip
    raise EscalationRefused("; ".join(problems).capitalize() + ".", details={"refused": problems})


def user_change_check(*, actor, user, **proposed: Any) -> None:
    """Raise :class:`EscalationRefused` (and record the attempt) if ``actor`` may not make this change."""
    problems = user_change_problems(actor=actor, user=user, **proposed)
    if problems:
        _refuse("user.change", actor=actor, object_type="user", object_id=user.pk, problems=problems)


def group_change_check(*, actor, group: Group, permissions: Iterable[Permission] | None = None) -> None:
    allowed = grantable_by(actor)
    if allowed is None:
        return
    problems = []
    held = set(group.permissions.all()) if group.pk else set()
    if group.pk and group.name in ROLES and permissions is not None and set(permissions) != held:
        problems.append(f"the permissions of the {group.name!r} role are declared in scoring/roles.py")
    if permissions is not None:
        beyond = sorted(perm_names(set(permissions) - held) - allowed)
        if beyond:
            problems.append(f"permissions you do not hold cannot be given: {', '.join(beyond)}")
    if problems:
        _refuse("group.change", actor=actor, object_type="group", object_id=group.pk, problems=problems)


# --- Changes ----------------------------------------------------------------------------
def user_create(
    *, actor, username: str, password: str | None = None, email: str = "", is_staff: bool = False,
    is_superuser: bool = False, groups: Iterable[Group] = (),
):  # fmt: skip
    """A new user (recorded ``user.create`` by the net)."""
    User = get_user_model()
    groups = list(groups)
    user_change_check(actor=actor, user=User(username=username), is_superuser=is_superuser, groups=groups,
                      changing=False)  # fmt: skip
    with transaction.atomic():
        user = User(username=username, email=email, is_staff=is_staff, is_superuser=is_superuser)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        if groups:
            user.groups.set(groups)
    return user


def user_update(*, actor, user, **fields: Any):
    """Change the plain fields of ``user`` (names, e-mail, flags)."""
    unknown = set(fields) - set(USER_AUDITED_FIELDS) - {"password"}
    if unknown:
        raise ValueError(f"user_update does not change {sorted(unknown)}")
    if "password" in fields:
        raise ValueError("use user_password_set for passwords")
    user_change_check(actor=actor, user=user, is_superuser=fields.get("is_superuser"))
    for name, value in fields.items():
        setattr(user, name, value)
    user.save()
    return user


def user_password_set(*, actor, user, password: str | None) -> None:
    """A new password (None: none usable)."""
    user_change_check(actor=actor, user=user)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save(update_fields=["password"])


def user_groups_set(*, actor, user, groups: Iterable[Group]) -> None:
    """Exactly these groups (roles and teams); each added one must not be above the actor's rights."""
    groups = list(groups)
    user_change_check(actor=actor, user=user, groups=groups)
    user.groups.set(groups)


def user_permissions_set(*, actor, user, permissions: Iterable[Permission]) -> None:
    """Exactly these direct model permissions (roles are the usual way; this is for exceptions)."""
    permissions = list(permissions)
    user_change_check(actor=actor, user=user, user_permissions=permissions)
    user.user_permissions.set(permissions)


def group_permissions_set(*, actor, group: Group, permissions: Iterable[Permission]) -> None:
    permissions = list(permissions)
    group_change_check(actor=actor, group=group, permissions=permissions)
    group.permissions.set(permissions)


# --- The audit net --------------------------------------------------------------------------
def _schedule_models() -> list[type[Model]]:
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )

    return [PeriodicTask, CrontabSchedule, IntervalSchedule, ClockedSchedule, SolarSchedule]


def _field_values(instance, names: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in names}


def _remember(sender, instance, update_fields=None, raw=False, **kwargs) -> None:
    names = _audited_fields(sender)
    if raw or not instance.pk or (update_fields is not None and not set(update_fields) & set(names)):
        instance._audit_before = None
        return
    before = sender._default_manager.filter(pk=instance.pk).values(*names).first()
    instance._audit_before = before


def _audited_fields(model) -> tuple[str, ...]:
    if model is get_user_model():
        return USER_AUDITED_FIELDS
    return tuple(
        f.attname for f in model._meta.concrete_fields if not f.primary_key and f.name not in SCHEDULE_BOOKKEEPING
    )


def _object_type(model) -> str:
    return model._meta.model_name


def _on_save(sender, instance, created, raw=False, update_fields=None, **kwargs) -> None:
    if raw or _service_recording.get():
        return
    names = _audited_fields(sender)
    before = getattr(instance, "_audit_before", None)
    if created:
        action, changed = "create", sorted(names)
    elif before is None:
        if update_fields is not None and not set(update_fields) & set(names):
            return
        action, changed = "change", sorted(names)
    else:
        changed = sorted(n for n in names if before.get(n) != getattr(instance, n))
        if not changed:
            return
        action = "change"
    details: dict[str, Any] = {"fields": changed}
    if sender is get_user_model():
        details.update(_field_values(instance, USER_FLAGS))
    elif sender is not Group:
        details["name"] = str(instance)[:200]  # a schedule's own description, no personal data
    audit_record(action=f"{_object_type(sender)}.{action}", object_type=_object_type(sender),
                 object_ids=[instance.pk], details=details)  # fmt: skip


def _on_delete(sender, instance, **kwargs) -> None:
    if _service_recording.get():
        return
    details = {} if sender in (get_user_model(), Group) else {"name": str(instance)[:200]}
    audit_record(action=f"{_object_type(sender)}.delete", object_type=_object_type(sender),
                 object_ids=[instance.pk], details=details)  # fmt: skip


def _related_labels(model, pks) -> list[str]:
    if model is Permission:
        return sorted(perm_names(Permission.objects.filter(pk__in=pks).select_related("content_type")))
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))
    return sorted(pks)  # users: ids only


def _m2m_recorder(owner, relation: str):
    def record(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
        if action not in ("post_add", "post_remove", "pre_clear") or _service_recording.get():
            return
        verb = "add" if action == "post_add" else "remove"
        if action == "pre_clear":  # the rows are gone after the clear: name them now
            pk_set = set(getattr(instance, relation if not reverse else _reverse_name(owner, relation))
                         .values_list("pk", flat=True))  # fmt: skip
        if not pk_set:
            return
        owners = sorted(pk_set) if reverse else [instance.pk]
        related = [instance.pk] if reverse else sorted(pk_set)
        related_model = instance.__class__ if reverse else model
        audit_record(
            action=f"{_object_type(owner)}.{relation}_{verb}", object_type=_object_type(owner), object_ids=owners,
            details={relation: _related_labels(related_model, related)},
        )  # fmt: skip

    return record


def _reverse_name(owner, relation: str) -> str:
    return owner._meta.get_field(relation).remote_field.get_accessor_name()


def users_audit_connect() -> None:
    """Connect the audit net (called once from the app's ready())."""
    User = get_user_model()
    models: tuple[type[Model], ...] = (User, Group, *_schedule_models())
    for model in models:
        uid = f"scoring.users.{model._meta.label_lower}"
        pre_save.connect(_remember, sender=model, dispatch_uid=f"{uid}.pre_save")
        post_save.connect(_on_save, sender=model, dispatch_uid=f"{uid}.post_save")
        post_delete.connect(_on_delete, sender=model, dispatch_uid=f"{uid}.post_delete")
    for owner, relation in ((User, "groups"), (User, "user_permissions"), (Group, "permissions")):
        through = owner._meta.get_field(relation).remote_field.through  # type: ignore[union-attr]
        m2m_changed.connect(_m2m_recorder(owner, relation), sender=through, weak=False,
                            dispatch_uid=f"scoring.users.{owner._meta.label_lower}.{relation}")  # fmt: skip
