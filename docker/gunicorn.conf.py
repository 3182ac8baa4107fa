"""gunicorn settings shared by the container (docker/start/web) and `make run`
(docker/start/dev); each passes the rest on the command line."""


def when_ready(server):
    # With --preload (make run) the master imported the app before forking: import the
    # URLconf too, and with it the views, the scoring service and torch, so every worker
    # starts with them loaded and no first request waits (or times out) on that import.
    # Without --preload (the container) the master stays free of the service.
    if server.cfg.preload_app:
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 (evaluating it imports every view module)


def child_exit(server, worker):
    # Prometheus multiprocess mode: a dead worker's live gauges must stop counting. Imported
    # here, not at the top, so the master never imports the service before it forks.
    from scoring.metrics import gunicorn_child_exit

    gunicorn_child_exit(server, worker)
