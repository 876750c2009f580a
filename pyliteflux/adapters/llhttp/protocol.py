"""The llhttp engine's HTTP/1.1 connection: httptools parses, we count.

Requests are parsed as bytes arrive (llhttp, every leniency off) and
queued; one is answered at a time, in order (pipelining), each response
written with one ``transport.write`` when it is ready at once. While a
response is in flight, further complete requests wait in the queue and
reading pauses (TCP backpressure), as ``twisted.web`` does.

The guards are those of ``adapters/http/channel.py``, with the same
answers: 413 for a too large ``Content-Length`` before its body, or a
body growing past ``max_body_size``; 414 for a request line over 16 KiB;
431 for a header line or the head over 16 KiB, or over 500 headers; 400
for anything llhttp refuses; 408 for headers slower than
``header_timeout`` or a body slower than ``min_body_rate``; idle
keep-alive connections close after ``http_idle_timeout``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, List, Optional, Tuple

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..http.channel import _error_bytes
from .guards import Guards
from .raw import RawRequest
from .wire import CONTINUE

__all__ = ["LLHTTPProtocol", "MAX_LINE", "MAX_HEAD", "MAX_HEADERS"]

_log = Logger(namespace="pyliteflux.http")

#: Twisted's limits (LineReceiver.MAX_LENGTH, totalHeadersSize, maxHeaders)
MAX_LINE = 16384
MAX_HEAD = 16384
MAX_HEADERS = 500
_STRICT = dict(lenient_headers=False, lenient_chunked_length=False, lenient_keep_alive=False,
               lenient_transfer_encoding=False, lenient_version=False,
               lenient_data_after_close=False, lenient_optional_lf_after_cr=False,
               lenient_optional_cr_before_lf=False, lenient_optional_crlf_after_chunk=False,
               lenient_spaces_after_chunk_size=False)


class _Stop(Exception):
    """Raised from a parser callback: stop parsing this connection's input."""


@implementer(IHalfCloseableProtocol, IPushProducer)
class LLHTTPProtocol(Guards, Protocol):
    """One HTTP/1.x connection of the llhttp engine."""

    transport: Any
    rejected = False
    _upgraded: Any = None
    _waitingForTransport = False
    _reading_paused = False
    _input_closed = False  # the client half-closed, or we will not read more
    _running = False
    _in_headers = False
    _url_len = 0
    _head_size = 0
    _partial_head = 0
    _body_len = 0
    _chunks = 0
    _consumed = 0
    _body: Optional[List[bytes]] = None
    _send_continue = False
    _held: Optional[List[bytes]] = None  # input while an upgrade is decided
    _reject_after: Optional[Tuple[int, str, str]] = None

    def __init__(self, factory: Any, peer: Any) -> None:
        self.factory = factory
        self.peer = peer
        self.config = factory.config
        self.responder = factory.responder
        self.max_body_size = self.config.max_body_size
        self._queue: Deque[RawRequest] = deque()
        self.current: Optional[RawRequest] = None
        self.pending: Any = None  # the Deferred of the current response, if late
        self._url: List[bytes] = []
        self._headers: List[Tuple[bytes, bytes]] = []

    def connectionMade(self) -> None:
        parser = self.parser = HttpRequestParser(self)
        parser.set_dangerous_leniencies(**_STRICT)
        self.transport.registerProducer(self, True)
        self.start_guards()

    # -- input ---------------------------------------------------------------------

    #: nothing received yet (``ConnectionSet.spare_fresh``)
    fresh = True

    def dataReceived(self, data: bytes) -> None:
        self.fresh = False
        if self._upgraded is not None:
            self._upgraded.dataReceived(data)
            return
        if self._held is not None:
            self._held.append(data)
            return
        if self.rejected or self._input_closed:
            return
        self.touch()
        self._feed(data)
        self._next()

    def _feed(self, data: bytes) -> None:
        self._consumed = 0
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            self._hold_upgrade(data[exc.args[0]:])
            return
        except HttpParserError:
            if not self.rejected and not self._input_closed and self._reject_after is None:
                self.reject(400, "Bad Request", "Bad Request")
            return
        if self._in_headers:  # a head arriving in pieces: llhttp keeps it, we count it
            self._partial_head += max(0, len(data) - self._consumed)
            if self._partial_head > MAX_HEAD + 64:
                self.reject(431, "Request Header Fields Too Large",
                            "Request Header Fields Too Large")

    # -- parser callbacks (httptools) ---------------------------------------------------

    def on_message_begin(self) -> None:
        if self._input_closed or self._reject_after is not None:
            raise _Stop()  # after a last request: ignore what follows (as Twisted does)
        self._in_headers = True
        self._url = []
        self._headers = []
        self._url_len = self._head_size = self._partial_head = self._body_len = 0
        self._chunks = 0
        self._body = None

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._url_len += len(url)
        if self._url_len + 10 + len(self.parser.get_method()) > MAX_LINE:
            self._refuse(414, "URI Too Long", "URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        line = len(name) + len(value) + 2
        self._head_size += line
        if (line > MAX_LINE or len(headers) > MAX_HEADERS
                or self._head_size + self._url_len > MAX_HEAD):
            self._refuse(431, "Request Header Fields Too Large",
                         "Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._partial_head = 0
        self.headers_done += 1
        if self.parser.get_http_version() not in ("1.1", "1.0"):  # llhttp takes HTTP/0.9
            self._refuse(400, "Bad Request", "Bad Request")
        length = None
        chunked = False
        expect = None
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)
            elif lower == b"transfer-encoding":
                chunked = True
            elif lower == b"expect" and expect is None:
                expect = value
        if length and self.max_body_size is not None and length > self.max_body_size:
            self._refuse(413, "Payload Too Large", "Payload Too Large")
        if (expect is not None and expect.lower() == b"100-continue"
                and self.parser.get_http_version() == "1.1"):
            if self.current is None and not self._queue:
                self.transport.write(CONTINUE)
            else:  # after the responses before it
                self._send_continue = True
        if chunked or length:
            self._body = []
            self.body_started()

    def on_body(self, data: bytes) -> None:
        self._body_len += len(data)
        self.body_bytes += len(data)
        if self.max_body_size is not None and self._body_len > self.max_body_size:
            self._refuse(413, "Payload Too Large", "Payload Too Large")
        body = self._body
        if body is None:
            self._body = [data]
        else:
            body.append(data)

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_message_complete(self) -> None:
        self.body_done()
        # about the bytes this message took of the current input (the head
        # of the next one is what is left, see _feed)
        self._consumed += (self._url_len + self._head_size + 2 * len(self._headers) + 32
                           + self._body_len + 8 * self._chunks)
        parser = self.parser
        version = b"HTTP/" + parser.get_http_version().encode("ascii")
        url = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        body = self._body
        headers = self._headers
        persistent = version == b"HTTP/1.1"
        if persistent:  # Twisted's rule: the first Connection header, split on spaces
            for name, value in headers:
                if name.lower() == b"connection":
                    persistent = b"close" not in [t.lower() for t in value.split(b" ")]
                    break
        raw = RawRequest(self, parser.get_method(), url, version, headers,
                         None if not body else body[0] if len(body) == 1 else b"".join(body),
                         persistent)
        if not persistent:
            raw.close_after = True
            self._input_closed = True
        self._queue.append(raw)

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self.reject(status, reason, message)
        raise _Stop()

    # -- answering, one request at a time -----------------------------------------------

    def _next(self) -> None:
        if self._running:
            return
        self._running = True
        try:
            queue = self._queue
            while self.current is None and queue and self._upgraded is None:
                raw = queue.popleft()
                self.current = raw
                self.busy()
                self.responder.start(self, raw)
            if self.current is None and not queue:
                if self._send_continue and self._in_headers is False and self._body is not None:
                    self._send_continue = False
                    self.transport.write(CONTINUE)
                if self._reject_after is not None:
                    status, reason, message = self._reject_after
                    self._reject_after = None
                    self.reject(status, reason, message)
                elif self._input_closed and self._upgraded is None and self._held is None:
                    self.transport.loseConnection()
                else:
                    self.idle()
        finally:
            self._running = False
        self._flow()

    def _flow(self) -> None:
        """Pause reading while requests queue up behind the one in flight."""
        want_pause = bool(self._queue) or self._waitingForTransport
        if want_pause != self._reading_paused and self.transport is not None:
            self._reading_paused = want_pause
            if want_pause:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def response_done(self, raw: RawRequest) -> None:
        """``raw``'s response is out: log it, start its jobs, answer the next."""
        if raw is not self.current:
            return
        self.current = None
        self.pending = None
        self.factory.log(raw)
        req = getattr(raw, "req", None)
        if req is not None and req._bg:
            self.factory.jobs.start_after(req)
        if raw.close_after:
            self._queue.clear()
            self._input_closed = True
            self.transport.loseConnection()
            return
        self._next()

    # -- upgrades ---------------------------------------------------------------------

    def _hold_upgrade(self, rest: bytes) -> None:
        """The request just queued asks for an upgrade: hold further input
        until it is answered; ``responder`` hands it over or serves it."""
        raw = self._queue[-1] if self._queue else None
        if raw is None:  # pragma: no cover - llhttp only pauses after a message
            self.reject(400, "Bad Request", "Bad Request")
            return
        raw.upgrade_rest = rest  # type: ignore[attr-defined]
        self._held = []

    def release_held(self, raw: RawRequest) -> bytes:
        """The upgrade of ``raw`` is decided: what the client sent after it."""
        rest = getattr(raw, "upgrade_rest", b"") + b"".join(self._held or ())
        self._held = None
        return rest

    def hand_over(self, proto: Any, rest: bytes) -> None:
        """Give the connection to ``proto`` (an upgrade handler's protocol)."""
        self._upgraded = proto
        self.stop_guards()
        self._queue.clear()
        self.transport.unregisterProducer()
        self.factory.forget(self)
        proto.makeConnection(self.transport)
        if rest:
            proto.dataReceived(rest)

    def continue_after_upgrade(self, rest: bytes) -> None:
        """An upgrade was declined: what followed is parsed as HTTP."""
        if rest and not self.rejected and not self._input_closed:
            self._feed(rest)

    # -- IPushProducer (the transport's buffer) and IHalfCloseableProtocol ---------------

    def pauseProducing(self) -> None:
        self._waitingForTransport = True
        producer = self.current.producer if self.current is not None else None
        if producer is not None:
            producer.pauseProducing()
        self._flow()

    def resumeProducing(self) -> None:
        self._waitingForTransport = False
        producer = self.current.producer if self.current is not None else None
        if producer is not None:
            producer.resumeProducing()
        self._flow()

    def stopProducing(self) -> None:
        """The transport is going: ``connectionLost`` follows."""

    def readConnectionLost(self) -> None:
        """The client sent EOF: answer what it sent in full, then close."""
        if self._upgraded is not None:
            half = getattr(self._upgraded, "readConnectionLost", None)
            if half is not None:
                half()
            else:
                self.transport.loseConnection()
            return
        self._input_closed = True
        if self.current is None and not self._queue and self._held is None:
            self.transport.loseConnection()
        elif self.current is not None and self.factory.responder.sse.owns(self.current):
            # an EventSource that sends EOF is gone, not waiting for an answer
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()

    # -- rejecting and closing -------------------------------------------------------------

    def reject(self, status: int, reason: str, message: str) -> None:
        """Answer with a short JSON error and close; ignore what follows. With
        a response still in flight the error waits for it (responses stay
        in request order)."""
        if self.rejected:
            return
        if self.current is not None or self._queue:
            if self._reject_after is None:
                self._reject_after = (status, reason, message)
            return
        self.rejected = True
        self._input_closed = True
        self.stop_guards()
        self.transport.write(_error_bytes(status, reason, message))
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.stop_guards()
        upgraded = self._upgraded
        if upgraded is not None:
            upgraded.connectionLost(reason)
        current = self.current
        self._queue.clear()
        if current is not None:
            self.current = None
            pending = self.pending
            self.pending = None
            current.connection_lost(reason)
            self.responder.gone(current, pending)
        self.factory.connection_closed(self)
