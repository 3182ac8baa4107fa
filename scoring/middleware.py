"""Request middleware of the audit log: a request id on every request and
response, and an audit event for every denied request."""

from __future__ import annotations

import re

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
        token = current_request.set(request)
        try:
            response = self.get_response(request)
        finally:
            current_request.reset(token)
        response["X-Request-ID"] = request.request_id
        if response.status_code in DENIED_STATUSES and self._audited(request.path):
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
