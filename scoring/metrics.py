"""Prometheus metrics: the metric objects, the request-timing middleware, the
``/metrics`` view and the Celery signal hooks.

Several processes serve one deployment (gunicorn workers, Celery workers), and
each counts in its own memory. With ``PROMETHEUS_MULTIPROC_DIR`` set (before the
process starts: prometheus_client picks its storage at import), every process
writes its samples to files in that folder and ``/metrics`` adds them up; the
folder must be emptied when the service starts and shared by the processes whose
numbers should be added (gunicorn's workers; a Celery worker on the same host or
volume). Without it, a plain in-memory registry serves one process (``runserver``,
tests). A worker in its own container serves its numbers on
``WORKER_METRICS_PORT``.

Queue depth and the model versions in use are not counted by any process: they are
read from the broker and the database when Prometheus scrapes.
"""

from __future__ import annotations

import hmac
import os
import time

from celery.signals import task_failure, task_retry
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

REQUEST_SECONDS = Histogram(
    "riskapp_http_request_duration_seconds",
    "Time to answer an HTTP request, by view name, method and status code.",
    ["view", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
SCORES = Counter(
    "riskapp_scores",
    "Scores written (rate() of it: scores per second), by portfolio, model version and mode (realtime or batch).",
    ["portfolio", "model_version", "mode"],
)
EXPLANATION_SECONDS = Histogram(
    "riskapp_explanation_seconds",
    "Time of one explained forward pass (DeepSHAP, which also yields the prediction) over a request's or a "
    "chunk's rows, by model kind and mode.",
    ["kind", "mode"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
TASK_FAILURES = Counter("riskapp_celery_task_failures", "Celery tasks that raised, by task name.", ["task"])
TASK_RETRIES = Counter("riskapp_celery_task_retries", "Celery task retries, by task name.", ["task"])
SUPERVISOR_REPAIRS = Counter(
    "riskapp_supervisor_repaired",
    "Things the supervisor repaired in this process (chunks re-queued, runs finished, jobs marked failed), by kind.",
    ["kind"],
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def scores_written(*, portfolio, version, count: int, mode: str) -> None:
    """Count ``count`` score rows of ``portfolio`` written by ``version`` (realtime or batch)."""
    if count:
        SCORES.labels(portfolio.name, str(version.version), mode).inc(count)


def supervisor_repaired(*, kind: str, count: int) -> None:
    if count:
        SUPERVISOR_REPAIRS.labels(kind).inc(count)


class ExplanationTimer:
    """``with ExplanationTimer(kind, mode):`` around the explained forward pass."""

    def __init__(self, kind: str, mode: str) -> None:
        self.kind, self.mode = kind, mode

    def __enter__(self) -> ExplanationTimer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        EXPLANATION_SECONDS.labels(self.kind, self.mode).observe(time.perf_counter() - self.started)


# --- Celery --------------------------------------------------------------------


@task_failure.connect
def _count_task_failure(sender=None, **kwargs) -> None:
    TASK_FAILURES.labels(getattr(sender, "name", None) or "unknown").inc()


@task_retry.connect
def _count_task_retry(sender=None, **kwargs) -> None:
    TASK_RETRIES.labels(getattr(sender, "name", None) or "unknown").inc()


def worker_metrics_serve(port: int) -> None:
    """Serve this Celery worker's numbers on ``port`` (a worker in its own container).
    With a prefork pool the tasks run in child processes, so this needs
    ``PROMETHEUS_MULTIPROC_DIR`` to see them."""
    from prometheus_client import start_http_server

    start_http_server(port, registry=_process_registry())


def gunicorn_child_exit(server, worker) -> None:
    """For gunicorn's ``child_exit`` hook: drop a dead worker's live samples."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(worker.pid)


# --- Scrape-time collectors ----------------------------------------------------


class QueueDepthCollector:
    """Messages waiting in each Celery queue, read from the broker at scrape time."""

    def collect(self):
        from django.conf import settings

        from scoring.services.health import queue_depths

        depth = GaugeMetricFamily(
            "riskapp_queue_depth",
            "Messages waiting in a Celery queue (read from the broker).",
            labels=["queue", "name"],
        )
        up = GaugeMetricFamily("riskapp_broker_up", "1 when the broker answered the queue-depth query.")
        try:
            depths = queue_depths()
        except Exception:  # the broker is down: say so, do not fail the scrape
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            for role, name in settings.CELERY_QUEUES_BY_ROLE.items():
                depth.add_metric([role, name], depths[role])
        yield depth
        yield up


class ModelVersionCollector:
    """``riskapp_model_version_info{portfolio,model_version,kind,status} 1`` for each
    model version in use: every active portfolio's champion and challenger."""

    def collect(self):
        from scoring.models import ModelVersion, Portfolio

        info = GaugeMetricFamily(
            "riskapp_model_version_info",
            "A model version in use (the champion, or the challenger shadow-scoring beside it).",
            labels=["portfolio", "model_version", "kind", "status", "role"],
        )
        portfolios = Portfolio.objects.filter(is_active=True).select_related("challenger_version")
        champions = ModelVersion.objects.filter(status=ModelVersion.STATUS_CHAMPION, portfolio__is_active=True)
        by_portfolio = {v.portfolio_id: v for v in champions}
        for portfolio in portfolios:
            for role, version in (
                ("champion", by_portfolio.get(portfolio.pk)),
                ("challenger", portfolio.challenger_version),
            ):
                if version is not None:
                    info.add_metric([portfolio.name, str(version.version), version.kind, version.status, role], 1)
        yield info


class SupervisorRepairCollector:
    """``riskapp_supervisor_repair_events{action}``: the supervisor's repairs as audited,
    read from the audit log, so any process's /metrics shows those of every worker."""

    def collect(self):
        from django.db.models import Count

        from scoring.models import AuditEvent
        from scoring.services.supervisor import AUDIT_ACTIONS

        events = CounterMetricFamily(
            "riskapp_supervisor_repair_events",
            "Repairs by the supervisor (audit events supervisor.*), by action.",
            labels=["action"],
        )
        rows = AuditEvent.objects.filter(action__in=AUDIT_ACTIONS).values("action").annotate(n=Count("id"))
        for row in rows.order_by("action"):
            events.add_metric([row["action"]], row["n"])
        yield events


def _process_registry() -> CollectorRegistry:
    """The counters and histograms of this process, or of all processes in multiprocess mode."""
    if not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def metrics_text() -> bytes:
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(QueueDepthCollector())
    scraped.register(ModelVersionCollector())
    scraped.register(SupervisorRepairCollector())
    return generate_latest(_process_registry()) + generate_latest(scraped)


def metrics_view(request):
    """``/metrics`` in Prometheus' text format. With ``METRICS_BEARER_TOKEN`` set, the
    scraper must send it (``Authorization: Bearer ...``); otherwise keep the path on
    the internal network."""
    from django.conf import settings
    from django.http import HttpResponse

    token = getattr(settings, "METRICS_BEARER_TOKEN", None)
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return HttpResponse("metrics need the bearer token\n", status=401, content_type="text/plain")
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)


# --- Middleware ----------------------------------------------------------------


class RequestMetricsMiddleware:
    """Times every request by its view's name (not its path: ids in paths would make
    a series per applicant), method and status."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None else "unresolved"  # the URL name, or the view's dotted path
        method = request.method if request.method in KNOWN_METHODS else "other"
        REQUEST_SECONDS.labels(view, method, str(response.status_code)).observe(time.perf_counter() - started)
        return response
