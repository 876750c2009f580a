"""Response objects and the conversion of handler results into HTTP responses.

A handler returns a plain value or one of these objects; the pipeline hands
that value through the middleware chain untouched and only then is it turned
into bytes here. A fixed set of types is accepted; anything else is a
``TypeError`` (and so a 500 naming the type), never a silent empty 200.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Type, Union

from .codec import dumps_json

__all__ = [
    "HTTPResponse",
    "HTTPJSONResponse",
    "StreamResponse",
    "Rendered",
    "render_http",
    "HeadersLike",
]

HeadersLike = Union[Mapping[str, Any], Iterable[Tuple[str, Any]], None]

#: (status, [(name, value), ...], body)
Rendered = Tuple[int, List[Tuple[bytes, bytes]], bytes]

_JSON_CT = b"application/json"
_TEXT_CT = b"text/plain; charset=utf-8"
_BYTES_CT = b"application/octet-stream"
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def normalise_headers(headers: HeadersLike) -> List[Tuple[bytes, bytes]]:
    """Headers as a list of byte pairs; names must be valid HTTP tokens.

    Values keep their text; Twisted replaces CR/LF in values when it writes
    them, so a value cannot inject a header.
    """
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for name, value in items:
        bname = _to_bytes(name)
        if not _TOKEN.match(bname):
            raise ValueError(f"invalid header name {name!r}")
        out.append((bname, _to_bytes(value)))
    return out


def _check_status(status: Any) -> int:
    if type(status) is not int or not 100 <= status <= 599:
        raise TypeError(f"HTTP status must be an int in 100..599, got {status!r}")
    return status


class HTTPResponse:
    """A response with an explicit status and headers.

    ``data`` is rendered like a plain return value (dict/list → JSON,
    str → text, bytes → as is, None → empty) unless ``headers`` names a
    Content-Type, which then wins.
    """

    def __init__(self, data: Any = None, status: int = 200, headers: HeadersLike = None) -> None:
        self.data = data
        self.status = status
        self.headers: Dict[str, Any] = dict(headers.items() if isinstance(headers, Mapping)
                                            else (headers or ()))

    def render_body(self) -> Tuple[bytes, Optional[bytes]]:
        """The body bytes and the default content type for them."""
        return _render_plain(self.data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data!r}, status={self.status!r})"


class HTTPJSONResponse(HTTPResponse):
    """JSON with an explicit status, headers and, optionally, a custom encoder."""

    def __init__(
        self,
        data: Any = None,
        status: int = 200,
        headers: HeadersLike = None,
        json_encoder: Optional[Type[json.JSONEncoder]] = None,
    ) -> None:
        super().__init__(data, status, headers)
        self.json_encoder = json_encoder

    def render_body(self) -> Tuple[bytes, Optional[bytes]]:
        return dumps_json(self.data, self.json_encoder), _JSON_CT


class StreamResponse:
    """A body produced piece by piece and sent with chunked transfer encoding.

    ``iterable`` may be a generator, an iterator, an async generator, or an
    iterator that yields Deferreds; ``str`` chunks are UTF-8 encoded.
    """

    def __init__(
        self,
        iterable: Any,
        content_type: str = "application/octet-stream",
        headers: HeadersLike = None,
        status: int = 200,
    ) -> None:
        self.iterable = iterable
        self.content_type = content_type
        self.status = status
        self.headers: Dict[str, Any] = dict(headers.items() if isinstance(headers, Mapping)
                                            else (headers or ()))

    def head(self) -> Tuple[int, List[Tuple[bytes, bytes]]]:
        """The status and headers to start the stream with (``Content-Type``
        added unless given); ``TypeError``/``ValueError`` for a bad status or
        header, which the adapters answer with the JSON 500."""
        headers = normalise_headers(self.headers)
        status = self.status
        if type(status) is not int or not 100 <= status <= 599:
            raise TypeError(f"HTTP status must be an int in 100..599, got {status!r}")
        if not any(n.lower() == b"content-type" for n, _ in headers):
            headers.append((b"Content-Type", self.content_type.encode("latin-1")))
        return status, headers

    def close(self) -> None:
        """Close the underlying generator (used when the stream never starts).

        An async generator is closed with ``aclose()``, scheduled as a
        coroutine on the reactor; a plain one with ``close()``.
        """
        aclose = getattr(self.iterable, "aclose", None)
        if aclose is not None:
            from twisted.internet.defer import Deferred

            Deferred.fromCoroutine(aclose()).addErrback(lambda f: None)
            return
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"StreamResponse({self.iterable!r}, content_type={self.content_type!r})"


def _render_plain(value: Any) -> Tuple[bytes, Optional[bytes]]:
    if isinstance(value, (dict, list)):
        return dumps_json(value), _JSON_CT
    if isinstance(value, str):
        return value.encode("utf-8"), _TEXT_CT
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), _BYTES_CT
    if value is None:
        return b"", None
    raise TypeError(f"cannot render a handler result of type {type(value).__name__}")


def render_http(value: Any) -> Rendered:
    """Turn a handler's (post-middleware) result into status, headers and body.

    ``StreamResponse`` is not handled here: the HTTP adapter streams it.
    """
    if isinstance(value, (dict, list)):
        return 200, [(b"Content-Type", _JSON_CT)], dumps_json(value)
    if isinstance(value, str):
        return 200, [(b"Content-Type", _TEXT_CT)], value.encode("utf-8")
    if value is None:
        return 204, [], b""
    if isinstance(value, HTTPResponse):
        body, ctype = value.render_body()
        headers = normalise_headers(value.headers)
        return _with_content_type(_check_status(value.status), headers, body, ctype)
    if isinstance(value, tuple):
        return _render_tuple(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 200, [(b"Content-Type", _BYTES_CT)], bytes(value)
    raise TypeError(f"cannot render a handler result of type {type(value).__name__}")


def _render_tuple(value: Tuple[Any, ...]) -> Rendered:
    if len(value) not in (2, 3):
        raise TypeError(f"a response tuple is (body, status) or (body, status, headers), "
                        f"got {len(value)} items")
    body_value, status = value[0], _check_status(value[1])
    extra = normalise_headers(value[2]) if len(value) == 3 else []
    if isinstance(body_value, HTTPResponse):
        body, ctype = body_value.render_body()
        extra = normalise_headers(body_value.headers) + extra
    else:
        body, ctype = _render_plain(body_value)
    return _with_content_type(status, extra, body, ctype)


def _with_content_type(status: int, headers: List[Tuple[bytes, bytes]], body: bytes,
                       ctype: Optional[bytes]) -> Rendered:
    if ctype is not None and not any(n.lower() == b"content-type" for n, _ in headers):
        headers.insert(0, (b"Content-Type", ctype))
    return status, headers, body
