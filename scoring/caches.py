"""Per-process caches of what every real-time request reads, with their invalidation.

A real-time decision needs the caller's token, user, roles and grants, the
portfolio with its policy, the champion and the reason texts. Read from the
database each time they cost a dozen statements; they change a few times a day.
So each web process keeps them, tagged with ``CacheVersion.value``, the one
counter in the database that every change to any of them bumps **in the
changing transaction** (``invalidate``). A request starts with ``cache_view()``:
one indexed read of the counter; if it moved, this process drops everything it
held. A revoked grant, a revoked token, a promoted champion, an edited reason
text or cut-off is therefore seen by every process on its very next request,
never a TTL later (tests/scoring/test_realtime.py proves it with two gunicorn
workers).

Bumps come from model signals (grants are guardian rows, roles are group
memberships, champions and portfolios are saves) and, for writes that bypass
signals (``QuerySet.update``), from an explicit ``invalidate()`` in the service
that makes them (token revocation). A new kind of cached fact needs its change
to call ``invalidate()``: the governance policy approval does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.db import connection
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save

T = TypeVar("T")

_ROW_ID = 1
# A process serving many distinct tokens or applicants' portfolios must not grow
# without bound: past this many entries it starts again (a refill is a few queries).
MAX_ENTRIES = 20_000


def cache_version() -> int:
    """The database's cache version (0 before the first change)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM scoring_cacheversion WHERE id = %s", [_ROW_ID])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def invalidate() -> None:
    """Tell every process that its cached grants, tokens, champions, policies and
    reason texts may be stale. Call it inside the transaction of the change: the
    bump commits (or rolls back) with it, so no process can see the new version
    before the change itself."""
    from scoring.models import CacheVersion

    updated = CacheVersion.objects.filter(pk=_ROW_ID).update(value=F("value") + 1)
    if not updated:  # a database flushed by a test, or created before the migration's row
        CacheVersion.objects.get_or_create(pk=_ROW_ID, defaults={"value": 1})


class CacheView:
    """One request's view of the process cache: the entries of the version it read."""

    __slots__ = ("entries", "version")

    def __init__(self, version: int, entries: dict):
        self.version = version
        self.entries = entries

    def get(self, kind: Hashable, key: Any, load: Callable[[], T | None]) -> T | None:
        """The cached value of (kind, key), loaded on a miss. ``None`` is never
        cached (an unknown token stays a database read, and cannot fill memory)."""
        try:
            return self.entries[(kind, key)]
        except KeyError:
            pass
        value = load()
        if value is not None:
            if len(self.entries) >= MAX_ENTRIES:
                self.entries.clear()
            self.entries[(kind, key)] = value
        return value


class ProcessCache:
    """The entries of this process, dropped whenever the database's version moves.

    Thread-safe for gthread workers: a version change swaps in a new dict (a value
    loaded under the old version lands in the dropped one), and dict reads and
    writes are atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._entries: dict = {}

    def view(self) -> CacheView:
        version = cache_version()
        if version != self._version:
            with self._lock:
                if version != self._version:
                    self._entries = {}
                    self._version = version
        return CacheView(version, self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._version = None


process_cache = ProcessCache()


def cache_view() -> CacheView:
    """The start of a cached request: one read of the version counter."""
    return process_cache.view()


# --- What bumps the version ---------------------------------------------------
def _bump(sender=None, **kwargs) -> None:
    invalidate()


def _user_saved(sender, update_fields=None, **kwargs) -> None:
    # A login writes last_login on every session start: not a change of access.
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    invalidate()


def cache_signals_connect() -> None:
    """Connect the bumps (``ScoringConfig.ready``). Every change of a cached fact
    made through the ORM passes here; a ``QuerySet.update`` of one must call
    ``invalidate()`` itself."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from guardian.models import GroupObjectPermission, UserObjectPermission

    from scoring.models import ApiToken, DatasetSchema, ModelVersion, Portfolio, ReasonCode, WebhookEndpoint

    user_model = get_user_model()
    # Grants (guardian rows), tokens, champions, policies (portfolio cut-offs and
    # scale), schemas and reason texts.
    for model in (
        UserObjectPermission,
        GroupObjectPermission,
        ApiToken,
        ModelVersion,
        Portfolio,
        DatasetSchema,
        ReasonCode,
        Group,
        WebhookEndpoint,  # the active endpoints a real-time decision is announced to
    ):
        post_save.connect(_bump, sender=model, dispatch_uid=f"caches.save.{model._meta.label}")
        post_delete.connect(_bump, sender=model, dispatch_uid=f"caches.delete.{model._meta.label}")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="caches.save.user")
    post_delete.connect(_bump, sender=user_model, dispatch_uid="caches.delete.user")
    # Roles (group membership and the groups' permissions), direct permissions, token narrowing.
    for through in (
        user_model.groups.through,
        user_model.user_permissions.through,
        Group.permissions.through,
        ApiToken.portfolios.through,
    ):
        m2m_changed.connect(_bump, sender=through, dispatch_uid=f"caches.m2m.{through._meta.label}")
