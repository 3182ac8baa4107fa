"""Request middleware of the audit log: a request id on every request and
response, and an audit event for every denied request."""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings

from scoring.audit import audit_record, current_request, new_request_id

# A client-supplied X-Request-ID is kept only when it cannot smuggle anything into
# logs or headers: short, and letters, digits and - _ . : only.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
DENIED_STATUSES = {401, 403}
# Static files and the probes are not access decisions about data.
_UNAUDITED_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics", "/favicon.ico")


def request_id_from(header: str | None) -> str:
    if header and _SANE_REQUEST_ID.match(header):
        return header
    return new_request_id()


# --- Flood control of denied anonymous requests ----------------------------------------
@dataclass
class _Burst:
    started: float
    recorded: int = 0
    suppressed: int = 0
    paths: dict[str, int] = field(default_factory=dict)


class DeniedFlood:
    """Denied requests of anonymous callers (bogus tokens, no credentials), per source
    address and window of AUDIT_DENIED_WINDOW_S seconds: the first AUDIT_DENIED_BURST
    are recorded one by one (``request.denied``); beyond that the source is answered
    429 before any authentication work and nothing is written per request, and when
    the window closes one ``request.denied_burst`` event records how many there were
    (count, window, source, the paths most asked). The log stays complete and bounded.

    The state is per process (like DRF's throttles over the default cache): with N web
    processes a source gets at most N times AUDIT_DENIED_BURST single events per window.
    A closed window is written at the next request the process serves (``flush``)."""

    clock = staticmethod(time.time)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bursts: dict[str, _Burst] = {}

    def reset(self) -> None:
        with self._lock:
            self._bursts.clear()

    @staticmethod
    def _window() -> float:
        return float(settings.AUDIT_DENIED_WINDOW_S)

    def retry_after(self, source: str) -> int | None:
        """Seconds to wait when ``source`` is over its allowance, else None."""
        now = self.clock()
        with self._lock:
            burst = self._bursts.get(source)
            if burst is None or now - burst.started >= self._window():
                return None
            if burst.recorded < settings.AUDIT_DENIED_BURST:
                return None
            return max(1, int(burst.started + self._window() - now + 0.999))

    def note(self, source: str, path: str) -> bool:
        """One more denied anonymous request: True when it is to be recorded on its own.
        (A closed window was written by :meth:`flush`, which runs first on every request.)"""
        now = self.clock()
        with self._lock:
            burst = self._bursts.get(source)
            if burst is None or now - burst.started >= self._window():
                burst = self._bursts[source] = _Burst(started=now)
            if burst.recorded < settings.AUDIT_DENIED_BURST:
                burst.recorded += 1
                return True
            burst.suppressed += 1
            burst.paths[path] = burst.paths.get(path, 0) + 1
            return False

    def suppressed(self, source: str, path: str) -> None:
        """A request answered 429 by :meth:`retry_after`: counted, not written."""
        with self._lock:
            burst = self._bursts.get(source)
            if burst is not None:
                burst.suppressed += 1
                burst.paths[path] = burst.paths.get(path, 0) + 1

    def flush(self, *, force: bool = False) -> int:
        """Write one ``request.denied_burst`` per closed window that suppressed requests."""
        now = self.clock()
        with self._lock:
            due = [(s, b) for s, b in self._bursts.items() if force or now - b.started >= self._window()]
            for source, _ in due:
                del self._bursts[source]
        written = 0
        for source, burst in due:
            if not burst.suppressed:
                continue
            top = sorted(burst.paths.items(), key=lambda kv: -kv[1])[:10]
            audit_record(
                action="request.denied_burst", outcome="denied", request=_NoRequest, actor_username="",
                details={
                    "source": source, "count": burst.recorded + burst.suppressed, "recorded_singly": burst.recorded,
                    "suppressed": burst.suppressed, "window_seconds": self._window(),
                    "window_start": datetime.fromtimestamp(burst.started, UTC).isoformat(),
                    "window_end": datetime.fromtimestamp(min(now, burst.started + self._window()), UTC).isoformat(),
                    "paths": {path[:200]: n for path, n in top},
                },
            )  # fmt: skip
            written += 1
        return written


class _NoRequestType:
    """Stands for "no request" in ``audit_record`` (None would mean the current one)."""

    META: dict = {}
    user = None


_NoRequest = _NoRequestType()
denied_flood = DeniedFlood()


def _source(request) -> str:
    try:
        return str(ipaddress.ip_address(str(request.META.get("REMOTE_ADDR", "")).strip()))
    except ValueError:
        return "unknown"


def _too_many(request, retry_after: int):
    from django.http import HttpResponse, JsonResponse

    response: HttpResponse
    if request.path.startswith("/api/"):
        from scoring.api.errors import error_body

        response = JsonResponse(
            error_body("throttled", "Too many refused requests from your address; try again later.",
                       {"retry_after_seconds": retry_after}),
            status=429,
        )  # fmt: skip
    else:
        response = HttpResponse("Too many refused requests from your address.\n", status=429,
                                content_type="text/plain")  # fmt: skip
    response["Retry-After"] = str(retry_after)
    return response


def _anonymous(request) -> bool:
    user = getattr(request, "user", None)
    return user is None or not user.is_authenticated


class AuditMiddleware:
    """Gives each request ``request.request_id`` (the client's X-Request-ID when
    sane, else a new UUID), returns it as the X-Request-ID response header, and
    records ``request.denied`` for 401/403 answers.

    The denial is recorded after the view returned, outside the view's
    transaction (ATOMIC_REQUESTS wraps the view only), so rolling back the
    denied request's work never drops its audit event. 404s are not recorded:
    a permission-filtered lookup answers 404 exactly like a missing id, on
    purpose, and cannot be told apart here.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        denied_flood.flush()  # closed windows of earlier floods, outside this request's context
        audited = self._audited(request.path)
        source = _source(request)
        if audited and _anonymous(request) and (wait := denied_flood.retry_after(source)) is not None:
            # A source over its allowance of refusals: answered before any authentication work, not written.
            denied_flood.suppressed(source, request.path)
            response = _too_many(request, wait)
            response["X-Request-ID"] = request.request_id
            return response
        token = current_request.set(request)
        try:
            response = self.get_response(request)
        finally:
            current_request.reset(token)
        response["X-Request-ID"] = request.request_id
        denied = response.status_code in DENIED_STATUSES and audited
        if denied and (not _anonymous(request) or denied_flood.note(source, request.path)):
            audit_record(
                action="request.denied",
                request=request,
                outcome="denied",
                details={"path": request.path[:500], "method": request.method, "status": response.status_code},
            )
        return response

    @staticmethod
    def _audited(path: str) -> bool:
        return not path.startswith(_UNAUDITED_PREFIXES)


class ServiceErrorMiddleware:
    """The portal's (and the admin's) one mapping of service errors: a refusal a view
    did not handle itself is a page with the error's message and status, never a 500.
    The API maps them in its exception handler (``scoring.api.errors``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from django.shortcuts import render

        from scoring.services.errors import ServiceError

        if not isinstance(exception, ServiceError) or request.path.startswith("/api/"):
            return None
        return render(request, "service_error.html", {"message": exception.message}, status=exception.status)


class NoStoreMiddleware:
    """``Cache-Control: no-store`` (Django's never-cache headers) on every answer but
    static files: pages, API responses, exports and the admin may all carry personal
    data, and no browser or proxy cache may keep a copy. Failing closed here is simpler
    than deciding page by page what holds PII."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.utils.cache import add_never_cache_headers

        response = self.get_response(request)
        if not request.path.startswith(_CACHEABLE_PREFIXES):
            add_never_cache_headers(response)
        return response


_CACHEABLE_PREFIXES = ("/static/", "/favicon.ico")
