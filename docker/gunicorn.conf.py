"""gunicorn settings for the container (docker/start/web passes the rest on the command line)."""


def child_exit(server, worker):
    # Prometheus multiprocess mode: a dead worker's live gauges must stop counting. Imported
    # here, not at the top, so the master never imports the service before it forks.
    from scoring.metrics import gunicorn_child_exit

    gunicorn_child_exit(server, worker)
