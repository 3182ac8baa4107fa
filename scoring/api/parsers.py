"""Request body size limits, checked before the body is read.

JSON and form bodies are read through ``request.body``, which Django limits to
DATA_UPLOAD_MAX_MEMORY_SIZE (``RequestDataTooBig``, answered 413 by the API's
error handler). A multipart upload is streamed to a temporary file instead, with
no limit of Django's on the file: without this parser one upload could fill the
disk before the view looks at its size.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import exceptions, parsers, status

# Room for the multipart envelope and the form's other fields around the file.
MULTIPART_OVERHEAD = 1024 * 1024


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _check_length(parser_context, limit: int) -> None:
    request = (parser_context or {}).get("request")
    meta = request.META if request is not None else {}
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise exceptions.ParseError("Invalid Content-Length.") from None
    if length > limit:
        raise RequestTooLarge(f"The request body is {length:,} bytes; at most {limit:,} are accepted.")


class LimitedMultiPartParser(parsers.MultiPartParser):
    """Uploads (imports): refused before a byte is stored when larger than
    IMPORT_MAX_FILE_MB; Django limits the form's other fields itself."""

    def parse(self, stream, media_type=None, parser_context=None):
        _check_length(parser_context, settings.IMPORT_MAX_FILE_MB * 1024 * 1024 + MULTIPART_OVERHEAD)
        return super().parse(stream, media_type, parser_context)
