"""The one base class of every error a service raises on purpose.

A service error carries a stable ``code`` for programs, a ``message`` for people and the
HTTP ``status`` it maps to. The API's exception handler, the portal and the management
commands map this base once, so a new rule of a service needs no new ``except`` anywhere.
New service errors subclass :class:`ServiceError` (or one of its subclasses) and set
``code``/``status`` as class attributes; the existing families are moved under it by the
security work, keeping their old bases (``ValueError`` etc.) where callers still catch those.
"""

from __future__ import annotations

import re
from typing import Any

# A file system path of two or more parts (/srv/app/models/training.py, C:\\x\\y).
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+){2,}[\\/]?")
_TRACEBACK = "Traceback (most recent call last)"


def public_error_text(text: str | None) -> str:
    """What a user is shown of a stored failure: the error's own sentence, without the
    traceback (that is for the log) and with file paths replaced by ``<path>``. Applied
    when an error is stored and again when one is shown (rows stored before this)."""
    if not text:
        return ""
    head = text.split(_TRACEBACK, 1)[0].split("\n\n", 1)[0]
    lines = [line for line in head.splitlines() if not line.lstrip().startswith('File "')]
    return _PATH.sub("<path>", "\n".join(lines)).strip()[:2000]


class ServiceError(Exception):
    """A rule of a service said no: the request is refused, nothing was half done."""

    code: str = "invalid"
    status: int = 400

    def __init__(self, message: str = "", *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message or self.__class__.__doc__ or self.code
        if code is not None:
            self.code = code
        self.details = details


class NotFoundError(ServiceError):
    """The object does not exist, or the caller may not know that it does."""

    code = "not_found"
    status = 404


class ConflictError(ServiceError):
    """The object's state forbids the request (not trained yet, already running, ...)."""

    code = "conflict"
    status = 409


class ForbiddenError(ServiceError):
    """The caller is known but this action is not theirs to take."""

    code = "permission_denied"
    status = 403
