"""Exceptions that map to an error response on either protocol.

Raise one from a handler or middleware to answer with that status (HTTP) or
that error line (TCP); anything else that escapes is a 500.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

__all__ = [
    "HTTPError",
    "BadRequest",
    "TopicError",
    "NotFound",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "INTERNAL_ERROR",
    "internal_error_line",
]

#: the body of every 500, on every protocol (copied before it is changed)
INTERNAL_ERROR: Dict[str, Any] = {"error": "Internal Server Error"}


def internal_error_line() -> bytes:
    """``INTERNAL_ERROR`` as JSON bytes, for writers that cannot render."""
    return b'{"error": "Internal Server Error"}'



class HTTPError(Exception):
    """An error with a status code and a JSON-able message.

    ``extra`` is merged into the error body; ``headers`` are sent with it.
    """

    status: int = 500
    message: str = "Internal Server Error"

    def __init__(
        self,
        message: Optional[str] = None,
        status: Optional[int] = None,
        headers: Optional[Dict[str, str]] = None,
        **extra: Any,
    ) -> None:
        if message is not None:
            self.message = message
        if status is not None:
            self.status = status
        self.headers: Dict[str, str] = dict(headers or {})
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> Dict[str, Any]:
        """The JSON error body: ``{"error": message, **extra}``."""
        out: Dict[str, Any] = {"error": self.message}
        out.update(self.extra)
        return out


class BadRequest(HTTPError):
    status = 400
    message = "Bad Request"


class TopicError(BadRequest, ValueError):
    """A bad topic, or one topic too many for a connection (SPEC §12).

    A ``ValueError`` for the code that subscribes, and a ``BadRequest`` for
    the pipeline: a command that lets it escape gets an error reply naming
    the limit (not a logged 500), and the connection stays.
    """


class NotFound(HTTPError):
    status = 404
    message = "Not Found"


class MethodNotAllowed(HTTPError):
    status = 405
    message = "Method Not Allowed"

    def __init__(self, allowed: Iterable[str], message: Optional[str] = None) -> None:
        self.allowed = list(allowed)
        super().__init__(message, headers={"Allow": ", ".join(self.allowed)})


class PayloadTooLarge(HTTPError):
    status = 413
    message = "Payload Too Large"


class ServiceUnavailable(HTTPError):
    status = 503
    message = "Service Unavailable"
