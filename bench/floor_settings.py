"""Settings of the realtime_latency bench servers: the service's own, plus one URL, the
floor (a bare DRF view behind our token authentication), so both endpoints are
measured under exactly the same settings, middleware and server."""

from riskapp.settings import *  # noqa: F403

ROOT_URLCONF = "floor_urls"
