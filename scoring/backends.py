"""Password login with throttling: the one authentication backend of the admin,
the portal and any API login (all go through ``django.contrib.auth.authenticate``).

Every attempt is counted in the database (``LoginThrottle``) per username and per
client address *before* the password is checked, inside one transaction that
locks the counter rows (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serialises writers). So however many attempts arrive at once,
at most ``LOGIN_FAILURE_LIMIT`` passwords are ever checked for one username in a
window: the attempt that reaches the limit locks the name, and every later one is
refused without looking at the password, the right one included, until the lock
ends. A successful login gives its attempt back and clears the username's count.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from scoring.models import LoginThrottle


class LoginLocked(PermissionDenied):
    """Too many failed logins for this username or address: refused without checking
    the password. ``authenticate`` turns it into a failed login (None, and the
    ``user_login_failed`` signal); the caller's message stays the generic one."""


def _keys(request, username: str) -> list[tuple[str, int]]:
    """(counter key, failure limit) of an attempt, in a fixed order (lock order)."""
    keys = [(f"user:{username.casefold()}"[:200], settings.LOGIN_FAILURE_LIMIT)]
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    if address and settings.LOGIN_IP_FAILURE_LIMIT:
        keys.append((f"ip:{address}"[:200], settings.LOGIN_IP_FAILURE_LIMIT))
    return sorted(keys)


def _expired(row: LoginThrottle, now: datetime) -> bool:
    window = timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    if row.locked_until is not None:
        return row.locked_until <= now  # a lock that ended starts a fresh count
    return row.first_failure_at is None or row.first_failure_at <= now - window


def login_attempt_claim(keys: list[tuple[str, int]]) -> None:
    """Count one attempt on every key, or raise LoginLocked if any key is locked."""
    now = timezone.now()
    lockout = timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    names = [key for key, _ in keys]
    with transaction.atomic():
        LoginThrottle.objects.bulk_create([LoginThrottle(key=key) for key in names], ignore_conflicts=True)
        rows = {row.key: row for row in LoginThrottle.objects.select_for_update().filter(key__in=names).order_by("key")}
        if any(row.locked_until is not None and row.locked_until > now for row in rows.values()):
            raise LoginLocked("Too many failed logins; try again later.")
        for key, limit in keys:
            row = rows[key]
            if _expired(row, now):
                row.failures, row.first_failure_at, row.locked_until = 0, now, None
            row.failures += 1
            if row.failures >= limit:
                row.locked_until = now + lockout
            row.save(update_fields=["failures", "first_failure_at", "locked_until"])


def login_attempt_succeeded(keys: list[tuple[str, int]]) -> None:
    """The password was right: clear the username's count, and give the address back
    the attempt it was charged (the address may still carry others' failures)."""
    with transaction.atomic():
        for key, limit in keys:
            rows = LoginThrottle.objects.filter(key=key)
            if key.startswith("user:"):
                rows.update(failures=0, first_failure_at=None, locked_until=None)
            else:
                rows.update(failures=Greatest(F("failures") - 1, 0))
                rows.filter(failures__lt=limit).update(locked_until=None)


class ThrottledModelBackend(ModelBackend):
    """``ModelBackend`` (users, passwords, model-level permissions) with the login
    throttle in front of the password check."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        keys = _keys(request, str(username))
        login_attempt_claim(keys)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_attempt_succeeded(keys)
        return user
