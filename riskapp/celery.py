"""The Celery application: configured from Django settings (CELERY_ namespace)."""

import logging
import os
import threading

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

logger = logging.getLogger(__name__)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskapp.settings")

app = Celery("riskapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Counts task failures and retries (Celery signals) for /metrics.
import scoring.metrics  # noqa: E402,F401


class _SupervisorTimer(threading.Thread):
    """Every worker's own timer: sends the supervisor task to a queue this worker
    consumes, at start and every SUPERVISOR_INTERVAL_SECONDS. So repairs go on with
    no beat running, and a worker alone on the train queue still supervises its
    trainings. Several workers mean several passes: each repair is a conditional
    update, so a thing is repaired once. A send that fails (the broker is down) is
    tried again at the next tick."""

    def __init__(self, app, queue: str, interval: float):
        super().__init__(name="supervisor-timer", daemon=True)
        self.app, self.queue, self.interval = app, queue, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.app.send_task(
                    "scoring.tasks.score_supervise", queue=self.queue, expires=max(self.interval * 2, 10)
                )
            except Exception:  # the broker is away: the next tick tries again
                logger.warning("supervisor timer: could not send the supervisor task", exc_info=True)
            if self.stopped.wait(self.interval):
                return


_timer: _SupervisorTimer | None = None


@worker_ready.connect
def _start_supervisor_timer(sender, **kwargs):
    from django.conf import settings

    global _timer
    queues = list(sender.app.amqp.queues.consume_from or settings.CELERY_QUEUES_BY_ROLE.values())
    score_queue = settings.CELERY_QUEUES_BY_ROLE["score"]
    queue = score_queue if score_queue in queues else queues[0]
    _timer = _SupervisorTimer(sender.app, queue, settings.SUPERVISOR_INTERVAL_SECONDS)
    _timer.start()


@worker_shutdown.connect
def _stop_supervisor_timer(**kwargs):
    if _timer is not None:
        _timer.stopped.set()


@worker_ready.connect
def _serve_worker_metrics(sender, **kwargs):
    """With WORKER_METRICS_PORT set, this worker serves its own /metrics (its own container)."""
    from django.conf import settings

    if settings.WORKER_METRICS_PORT:
        from scoring.metrics import worker_metrics_serve

        worker_metrics_serve(settings.WORKER_METRICS_PORT)
