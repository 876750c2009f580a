"""The llhttp engine's raw request: what ``core.requests.HTTPRequest`` reads
of a ``twisted.web`` request, built from the parser's parts, and — for
streamed and late responses — the small ``twisted.web``-like writer that
``core.streaming.StreamProducer`` drives.

It is deliberately not a ``twisted.web`` Request: the common response (a
dict from a plain handler) never touches the writer half; the protocol
writes it in one ``transport.write``. Request headers become a
``twisted.web.http_headers.Headers`` only when a handler reads them.
"""

from __future__ import annotations

from io import BytesIO
from time import perf_counter
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from ...core.routing import UNMATCHED
from .wire import head_bytes

__all__ = ["RawRequest"]

_NO_BODY_CODES = (204, 304)


class RawRequest:
    """One parsed request (``method``, ``uri``, ``path``, ``clientproto``,
    ``requestHeaders``, ``content``), plus its response state."""

    # response state; class-level defaults keep __init__ cheap
    code = 200
    startedWriting = False
    route = UNMATCHED  # the registered pattern, once routed (metrics' label)
    finished = False
    _disconnected = False
    chunked = False
    sentLength = 0
    producer: Any = None
    close_after = False  # the connection closes once this response is out
    _headers_obj: Optional[Headers] = None
    _response_headers: Optional[Headers] = None
    _finish_waiters: Optional[List[Deferred[None]]] = None
    received_cookies: Dict[bytes, bytes]

    def __init__(self, channel: Any, method: bytes, uri: bytes, clientproto: bytes,
                 headers: List[Tuple[bytes, bytes]], body: Optional[bytes],
                 persistent: bool) -> None:
        self.channel = channel
        self.method = method
        self.uri = uri
        i = uri.find(b"?")
        self.path = uri if i < 0 else uri[:i]
        self.clientproto = clientproto
        self.header_list = headers
        self.content = BytesIO(body) if body else None
        self.persistent = persistent
        self.started = perf_counter()  # the access log's and metrics' duration

    # -- what HTTPRequest reads ------------------------------------------------------

    @property
    def requestHeaders(self) -> Headers:
        headers = self._headers_obj
        if headers is None:
            headers = self._headers_obj = Headers()
            for name, value in self.header_list:
                headers.addRawHeader(name, value)
        return headers

    def getHeader(self, name: bytes) -> Optional[bytes]:
        """The last value of request header ``name`` (case-insensitive), or None."""
        lower = name.lower()
        found = None
        for n, v in self.header_list:
            if n.lower() == lower:
                found = v
        return found

    def parseCookies(self) -> None:
        """Fill ``received_cookies`` from the ``Cookie`` headers (as Twisted does)."""
        cookies: Dict[bytes, bytes] = {}
        for name, value in self.header_list:
            if name.lower() != b"cookie":
                continue
            for part in value.split(b";"):
                key, sep, val = part.strip().partition(b"=")
                if sep:
                    cookies[key] = val
        self.received_cookies = cookies

    def getClientAddress(self) -> Any:
        return self.channel.peer

    # -- the writer StreamProducer drives ------------------------------------------------

    @property
    def responseHeaders(self) -> Headers:
        headers = self._response_headers
        if headers is None:
            headers = self._response_headers = Headers()
        return headers

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.responseHeaders.setRawHeaders(name, [value])

    def write(self, data: bytes) -> None:
        if self.finished or self._disconnected:
            return
        channel = self.channel
        if not self.startedWriting:
            self.startedWriting = True
            headers = self.responseHeaders
            code = self.code
            head_only = self.method == b"HEAD" or code in _NO_BODY_CODES
            if (not head_only and self.clientproto == b"HTTP/1.1"
                    and not headers.hasHeader(b"Content-Length")):
                headers.setRawHeaders(b"Transfer-Encoding", [b"chunked"])
                self.chunked = True
            if self.close_after and self.clientproto == b"HTTP/1.1":
                headers.setRawHeaders(b"Connection", [b"close"])
            pairs = [(n, v) for n, values in headers.getAllRawHeaders() for v in values]
            head = head_bytes(self.clientproto, code, pairs)
            if head_only:
                channel.write(head)
                return
            if data:
                self.sentLength += len(data)
                channel.write(head + (b"%x\r\n%s\r\n" % (len(data), data)
                                      if self.chunked else data))
            else:
                channel.write(head)
            return
        if not data or self.method == b"HEAD" or self.code in _NO_BODY_CODES:
            return
        self.sentLength += len(data)
        channel.write(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)

    def finish(self) -> None:
        if self.finished or self._disconnected:
            return
        if not self.startedWriting:
            self.write(b"")
        if self.chunked:
            self.channel.write(b"0\r\n\r\n")
        self.finished = True
        self._fire(None)
        self.channel.response_done(self)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def notifyFinish(self) -> Deferred[None]:
        """Fires when the response is finished; fails if the client goes first."""
        d: Deferred[None] = Deferred()
        if self.finished:
            d.callback(None)
        elif self._disconnected:
            d.errback(Failure(ConnectionError("client went away")))
        else:
            if self._finish_waiters is None:
                self._finish_waiters = []
            self._finish_waiters.append(d)
        return d

    def connection_lost(self, reason: Failure) -> None:
        """The connection went before this response was finished."""
        if self.finished or self._disconnected:
            return
        self._disconnected = True
        producer = self.producer
        if producer is not None:
            self.producer = None
            producer.stopProducing()
        self._fire(reason)

    def _fire(self, result: Any) -> None:
        waiters = self._finish_waiters
        if waiters:
            self._finish_waiters = None
            for d in waiters:
                if result is None:
                    d.callback(None)
                else:
                    d.errback(result)

    def __repr__(self) -> str:
        return f"<RawRequest {self.method!r} {self.uri!r}>"
