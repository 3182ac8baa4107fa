"""Request body size limits, checked before the body is read.

JSON and form bodies are read through ``request.body``, which Django limits to
DATA_UPLOAD_MAX_MEMORY_SIZE (``RequestDataTooBig``, answered 413 by the API's
error handler). A multipart upload is streamed to a temporary file instead, with
no limit of Django's on the file: without this parser one upload could fill the
disk before the view looks at its size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


# Deeper than any body the API documents (a score request nests three levels); a
# 100,000-deep body made the json module raise RecursionError, a 500.
MAX_JSON_DEPTH = 32


def json_depth_exceeds(value, limit: int) -> bool:
    """Whether ``value`` nests lists/objects deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class DepthLimitedJSONParser(parsers.JSONParser):
    """JSON bodies nested at most MAX_JSON_DEPTH levels: deeper ones are a 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from None
        if json_depth_exceeds(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        return data
