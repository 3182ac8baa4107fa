"""The Celery application: configured from Django settings (CELERY_ namespace)."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "riskapp.settings")

app = Celery("riskapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Counts task failures and retries (Celery signals) for /metrics.
import scoring.metrics  # noqa: E402,F401


@worker_ready.connect
def _recover_batch_runs(sender, **kwargs):
    """A restarted worker picks up batch runs whose chunks died with a previous worker."""
    from django.conf import settings

    # Once the dead worker's claims are stale, so they can be taken over.
    sender.app.send_task("scoring.tasks.score_recover_runs", countdown=settings.SCORE_CHUNK_STALE_SECONDS + 1)


@worker_ready.connect
def _serve_worker_metrics(sender, **kwargs):
    """With WORKER_METRICS_PORT set, this worker serves its own /metrics (its own container)."""
    from django.conf import settings

    if settings.WORKER_METRICS_PORT:
        from scoring.metrics import worker_metrics_serve

        worker_metrics_serve(settings.WORKER_METRICS_PORT)
