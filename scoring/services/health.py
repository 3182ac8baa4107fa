"""Health of the things the service depends on: the database and the broker (``/healthz``),
the champion models as well (``/readyz``), and the depth of the Celery queues (``/metrics``)."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection


def database_status() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not OK"; the reason is reported
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "vendor": connection.vendor, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def broker_status(timeout: float = 2.0) -> dict:
    from riskapp.celery import app

    started = time.perf_counter()
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            transport = conn.transport_cls
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "transport": str(transport), "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def queue_depths(timeout: float = 2.0) -> dict[str, int]:
    """Messages waiting in each Celery queue (default, score, train; with the prefix),
    by role. A passive ``queue_declare`` answers the count on every transport kombu
    has: AMQP asks the broker, Redis sums the queue's lists (LLEN per priority), the
    filesystem transport counts the queue's files. A queue never declared holds
    nothing. Raises when the broker cannot be reached."""
    from kombu.exceptions import ChannelError

    from riskapp.celery import app

    depths = {}
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        for role, name in settings.CELERY_QUEUES_BY_ROLE.items():
            try:
                # A channel per queue: AMQP closes the channel on a passive declare of a missing queue.
                with conn.channel() as channel:
                    depths[role] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except (ChannelError, *conn.channel_errors):
                depths[role] = 0
    return depths


def champion_status() -> dict:
    """Every active portfolio's champion loaded for scoring (artifact and explainer
    background read and checked against their SHA-256), through ``scoring.inference``,
    so a ready process has its models in memory. Loaded once per process; later
    probes find them cached."""
    from scoring.inference import decider_load
    from scoring.models import ModelVersion

    models = []
    champions = ModelVersion.objects.filter(status=ModelVersion.STATUS_CHAMPION, portfolio__is_active=True)
    for version in champions.select_related("portfolio", "schema").order_by("portfolio__name"):
        entry = {"portfolio": version.portfolio.name, "model_version": version.version, "kind": version.kind}
        try:
            decider_load(version)
        except Exception as exc:  # a missing or altered artifact: not ready, and why
            entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        else:
            entry["ok"] = True
        models.append(entry)
    return {"ok": all(m["ok"] for m in models), "champions": models}


def liveness() -> tuple[bool, dict]:
    """Alive: the database and broker answer. Returns (alive, body)."""
    checks = {"database": database_status(), "broker": broker_status()}
    alive = all(check["ok"] for check in checks.values())
    return alive, {"status": "ok" if alive else "error", **checks}


def audit_status() -> dict:
    from scoring.audit import audit_status as status

    return status()


def readiness() -> tuple[bool, dict]:
    """Ready to serve: alive (database and broker answer), every champion loads, and the
    audit log is protected (append-only triggers in place, the sealer keeping up).
    Returns (ready, body); the body names each failed check under ``failed``."""
    _, body = liveness()
    checks = {"database": body["database"], "broker": body["broker"]}
    checks["models"] = champion_status() if checks["database"]["ok"] else {"ok": False, "error": "database down"}
    checks["audit"] = audit_status() if checks["database"]["ok"] else {"ok": False, "error": "database down"}
    failed = [name for name, check in checks.items() if not check["ok"]]
    failed += [f"model:{m['portfolio']}" for m in checks["models"].get("champions", []) if not m["ok"]]
    ready = not failed
    return ready, {"status": "ok" if ready else "error", "failed": failed, **checks}
