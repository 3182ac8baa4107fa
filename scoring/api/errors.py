"""One error format for every error the API answers with.

Every 4xx and 5xx body is ``{"error": {"code": ..., "message": ..., "details": ...}}``:
``code`` is stable and meant for programs (``not_found``, ``invalid``, ``conflict``, ...),
``message`` is a sentence for people, ``details`` is ``null`` or an object (the field
errors of a 400, the wait of a 429). Clients then parse one shape, whatever failed:
validation, authentication, the permission gate, throttling, a rule of a service
or a bug.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.signals import got_request_exception
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from scoring.api.parsers import RequestTooLarge
from scoring.services.errors import ServiceError

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    """The request is well formed but the object's state forbids it (a model that is
    not trained yet cannot be approved; a portfolio without a champion cannot score)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the object."
    default_code = "conflict"


def error_body(code: str, message: str, details: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


def _first_problem(detail: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], str] | None:
    """The field path and text of the first problem in a (nested) validation error.
    A problem of the data-validation report (``{column, message, ...}``) counts as one."""
    if isinstance(detail, dict):
        if isinstance(detail.get("message"), str):
            column = detail.get("column")
            return ((*path, str(column)) if column else path), detail["message"]
        for key, value in detail.items():
            found = _first_problem(value, path if key == "non_field_errors" else (*path, str(key)))
            if found:
                return found
        return None
    if isinstance(detail, list):
        for item in detail:
            found = _first_problem(item, path)
            if found:
                return found
        return None
    return path, str(detail)


def _validation_error(exc: exceptions.ValidationError) -> tuple[str, str, dict]:
    detail = exc.detail
    details = detail if isinstance(detail, dict) else {"non_field_errors": detail}
    found = _first_problem(details)
    if found is None:
        return "invalid", "Invalid input.", details
    path, text = found
    return "invalid", f"Invalid input: {'.'.join(path)}: {text}" if path else f"Invalid input: {text}", details


class ServiceRefused(exceptions.APIException):
    """A service error (``scoring.services.errors.ServiceError``) as the API answers it."""

    def __init__(self, error: ServiceError) -> None:
        self.status_code = error.status
        super().__init__(detail=error.message, code=error.code)
        self.default_code = error.code
        self.service_details = error.details


def service_error_to_api(error: ServiceError) -> exceptions.APIException:
    """The one mapping of service errors: their status, code and message; a 400 with
    field details is a validation error like a serializer's."""
    if error.status == 400 and isinstance(error.details, dict):
        return exceptions.ValidationError(error.details)
    return ServiceRefused(error)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: the default handling (status, WWW-Authenticate and
    Retry-After headers, rollback), then the body rewritten to the one format."""
    if isinstance(exc, Http404):
        # One message whether the id is missing or belongs to another portfolio.
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, RequestDataTooBig):  # a body above DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = RequestTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        # Django's refusals of a malformed request (more form fields than
        # DATA_UPLOAD_MAX_NUMBER_FIELDS, too many files, ...): the client's error, a 400
        # like Django's own answer outside the API, never a 500.
        exc = exceptions.ParseError(f"Malformed request: {exc}")
    elif isinstance(exc, ServiceError):
        exc = service_error_to_api(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        if settings.DEBUG:
            return None  # the developer sees Django's technical 500 page
        request = context.get("request")
        logger.error("Unhandled error in %s", getattr(request, "path", "?"), exc_info=exc)
        # Lets Django's test client re-raise it and error reporters see it.
        got_request_exception.send(sender=None, request=getattr(request, "_request", request))
        return Response(
            error_body("server_error", "An internal error occurred; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    assert isinstance(exc, exceptions.APIException)
    details: dict | None
    if isinstance(exc, exceptions.ValidationError):
        code, message, details = _validation_error(exc)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        message = str(exc.detail) if not isinstance(exc.detail, list | dict) else str(exc.default_detail)
        details = getattr(exc, "service_details", None)
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            details = {"retry_after_seconds": math.ceil(wait)}
    response.data = error_body(str(code), message, details)
    return response


@csrf_exempt  # whatever the method: a POST without a CSRF token was an HTML 403 before the 404
def not_found_view(request, *args, **kwargs) -> JsonResponse:
    """Any path under /api/ that names no endpoint: a 404 in the API's format
    rather than Django's HTML page, whatever the method."""
    return JsonResponse(
        error_body("not_found", f"No endpoint at {request.path}; see /api/v1/docs/."),
        status=status.HTTP_404_NOT_FOUND,
    )


class ErrorSerializer(serializers.Serializer):
    """The contents of every error body."""

    code = serializers.CharField(
        help_text="Stable, for programs: invalid, parse_error, not_authenticated, authentication_failed, "
        "permission_denied, not_found, method_not_allowed, unsupported_media_type, conflict, throttled, "
        "server_error."
    )
    message = serializers.CharField(help_text="A sentence for people; may change between releases.")
    details = serializers.JSONField(
        allow_null=True,
        help_text="null, or an object: for `invalid`, each field's list of problems (nested for nested input; "
        "`non_field_errors` for problems of the whole body); for `throttled`, `retry_after_seconds`.",
    )


class ErrorResponseSerializer(serializers.Serializer):
    """Every 4xx/5xx answer of the API has this body."""

    error = ErrorSerializer()
