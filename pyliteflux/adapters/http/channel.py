"""HTTP connection guards that ``twisted.web`` does not have.

- a maximum request body: a larger ``Content-Length`` is answered 413
  before the body is read; a chunked body growing past it is cut off;
- a header deadline: a request's headers must be complete within
  ``header_timeout`` seconds of its first byte (slowloris), which Twisted's
  idle timeout — reset by every byte — does not enforce;
- a minimum body rate: a body that arrives slower than ``min_body_rate``
  bytes per second (measured over ``_RATE_WINDOW`` seconds) is cut off;
- connection caps: in total and, optionally, per client address.

The channel is a plain ``HTTPChannel`` subclass (HTTP/1.x); the limits come
from the server's config when the connection is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request
from zope.interface import implementer

from ...twisted_internals import header_bytes_so_far, headers_over_limits, in_request_headers

if TYPE_CHECKING:  # pragma: no cover
    from ...config import Config

__all__ = ["GuardedChannel", "GuardedRequest", "ConnectionLimiter"]

_log = Logger(namespace="pyliteflux.http")
_RATE_WINDOW = 10.0


def _error_bytes(status: int, reason: str, message: str) -> bytes:
    body = ('{"error": "%s"}' % message).encode("ascii")
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (status, reason.encode("ascii"), len(body))) + body


class GuardedRequest(Request):
    """Twisted's request with our body limit. A too large ``Content-Length``
    is refused by the channel before this sees it. (Our ``Site`` also turns
    off Twisted's eager form parsing: pyliteflux parses forms lazily, within
    the same limit.)"""

    _body_received = 0

    def _handleStar(self) -> None:
        """``*`` as the target: ``OPTIONS *`` is Twisted's empty 200; any other
        method gets the 405 every other path gets, with its JSON body."""
        if self.method == b"OPTIONS":
            return super()._handleStar()  # type: ignore[misc]
        body = b'{"error": "Method Not Allowed"}'
        self.setResponseCode(405)
        self.setHeader(b"Allow", b"OPTIONS")
        self.setHeader(b"Content-Type", b"application/json")
        self.setHeader(b"Content-Length", b"%d" % len(body))
        self.write(body)
        self.finish()

    def handleContentChunk(self, data: bytes) -> None:
        channel: Any = self.channel
        if getattr(channel, "rejected", False):
            return
        self._body_received += len(data)
        channel.body_bytes = getattr(channel, "body_bytes", 0) + len(data)
        limit = getattr(channel, "max_body_size", None)
        if limit is not None and self._body_received > limit:
            channel.reject(413, "Payload Too Large", "Payload Too Large")
            return
        super().handleContentChunk(data)


@implementer(IHalfCloseableProtocol)
class GuardedChannel(HTTPChannel):
    """An ``HTTPChannel`` that enforces the header deadline, body rate and size,
    and answers clients that half-close after sending their request."""

    max_body_size: Optional[int] = None
    transport: Any  # a Twisted transport (zope interfaces type poorly)
    header_timeout: float = 0
    min_body_rate: float = 0
    rejected = False
    body_bytes = 0
    _headers_done = 0  # header blocks completed on this connection
    _watch_mark: Optional[int] = None
    _watch_count = 0

    def __init__(self) -> None:
        super().__init__()
        self._header_call: Any = None
        self._rate_call: Any = None
        self._rate_mark = 0

    def configure(self, config: "Config") -> None:
        self.max_body_size = config.max_body_size
        self.header_timeout = config.header_timeout
        self.min_body_rate = config.min_body_rate

    # -- header deadline -----------------------------------------------------------
    #
    # Nothing per request: one timer per connection ticks every
    # header_timeout / 2 seconds and looks whether the connection is in the
    # middle of a request's headers. Seen so at three ticks in a row with no
    # header block completed in between, the headers have taken at least
    # header_timeout (at most 1.5x): the client is dripping them.

    #: nothing received yet (``ConnectionSet.spare_fresh``)
    fresh = True

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.header_timeout:
            self._header_call = self.callLater(self.header_timeout / 2, self._tick_headers)

    def _tick_headers(self) -> None:
        self._header_call = None
        if in_request_headers(self):
            if self._watch_mark == self._headers_done:
                self._watch_count += 1
                if self._watch_count >= 3:
                    self._headers_too_slow()
                    return
            else:
                self._watch_mark, self._watch_count = self._headers_done, 1
        else:
            self._watch_mark = None
        self._header_call = self.callLater(self.header_timeout / 2, self._tick_headers)

    def _cancel(self, name: str) -> None:
        call = getattr(self, name)
        if call is not None:
            if call.active():
                call.cancel()
            setattr(self, name, None)

    def _headers_too_slow(self) -> None:
        _log.info("closing {peer}: request headers not complete within {timeout} s",
                  peer=str(self.transport.getPeer()), timeout=self.header_timeout)
        self.reject(408, "Request Timeout", "Request Timeout")

    def allHeadersReceived(self) -> None:
        self._headers_done += 1
        length = self.length
        if length and self.max_body_size is not None and length > self.max_body_size:
            self.reject(413, "Payload Too Large", "Payload Too Large")  # before any body
            return
        super().allHeadersReceived()
        if length != 0 and self.min_body_rate and not self.rejected:
            self.body_bytes = 0
            self._rate_mark = 0
            self._rate_call = self.callLater(_RATE_WINDOW, self._check_body_rate)

    def _respondToBadRequestAndDisconnect(self) -> None:
        """(Twisted's hook for a malformed request line, header, length or
        chunk, and for too many or too large headers) the same answer and
        close, with a JSON body like our other errors: 431 when the headers
        were too many or too large in total, else 400."""
        if headers_over_limits(self):
            self.reject(431, "Request Header Fields Too Large",
                        "Request Header Fields Too Large")
        else:
            self.reject(400, "Bad Request", "Bad Request")

    def lineLengthExceeded(self, line: bytes) -> None:
        """A request line or header line longer than ``MAX_LENGTH`` (16 KiB):
        answer 414 or 431 (Twisted's channel would just close)."""
        if header_bytes_so_far(self) == 0 and not self._handlingRequest:
            self.reject(414, "URI Too Long", "URI Too Long")
        else:
            self.reject(431, "Request Header Fields Too Large",
                        "Request Header Fields Too Large")

    # -- body rate -------------------------------------------------------------------

    def _check_body_rate(self) -> None:
        self._rate_call = None
        received = self.body_bytes - self._rate_mark
        if received < self.min_body_rate * _RATE_WINDOW:
            _log.info("closing {peer}: request body slower than {rate} bytes/s",
                      peer=str(self.transport.getPeer()), rate=self.min_body_rate)
            self.reject(408, "Request Timeout", "Request Timeout")
            return
        self._rate_mark = self.body_bytes
        self._rate_call = self.callLater(_RATE_WINDOW, self._check_body_rate)

    def dataReceived(self, data: bytes) -> None:
        if self.rejected:  # answered and closing: drop what follows (TLS keeps
            return         # delivering until the peer's close_notify)
        self.fresh = False
        HTTPChannel.dataReceived(self, data)

    def allContentReceived(self) -> None:
        if self.rejected:  # a body cut off (over the size limit): its request never runs
            return
        if self._rate_call is not None:
            self._cancel("_rate_call")
        HTTPChannel.allContentReceived(self)  # (not super(): this runs per request, # PERF)


    # -- half-close ------------------------------------------------------------------

    def readConnectionLost(self) -> None:
        """The client sent EOF (``shutdown(SHUT_WR)``, ``nc -N``): finish the
        request in hand, then close; Twisted's channel would drop it."""
        self.persistent = False
        if not self._handlingRequest or self._streaming_push():
            self.transport.loseConnection()

    def _streaming_push(self) -> bool:
        """Whether this connection carries an SSE push stream (SPEC §14): an
        ``EventSource`` that sends EOF is gone, not waiting for an answer."""
        sse = getattr(getattr(self, "site", None), "sse", None)
        return sse is not None and any(sse.owns(r) for r in self.requests)

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()

    # -- rejecting -------------------------------------------------------------------

    def reject(self, status: int, reason: str, message: str) -> None:
        """Answer with a short JSON error and close; ignore what follows."""
        if self.rejected:
            return
        self.rejected = True
        self._cancel("_header_call")
        self._cancel("_rate_call")
        self.setTimeout(None)
        # whatever else this connection sends is ignored: new data
        # (``dataReceived``), the rest of the chunk being parsed (LineReceiver's
        # ``paused``), a body being read (``handleContentChunk``) and its
        # request, which never runs (``allContentReceived``)
        self.paused = True
        self._buffer = b""
        self.transport.write(_error_bytes(status, reason, message))
        self.transport.loseConnection()


    def detach(self) -> Callable[[], None]:
        """The connection leaves HTTP (a WebSocket upgrade takes the transport):
        stop this channel's timers and its Site's tracking, and return the
        function that gives its connection slot back, for when the new
        protocol closes (``connectionLost`` will not be called here)."""
        self._cancel("_header_call")
        self._cancel("_rate_call")
        self.setTimeout(None)
        forget = getattr(self.factory, "forget", None)
        if forget is not None:
            forget(self)
        limiter = getattr(self, "limiter", None)
        return (lambda: limiter.release(self)) if limiter is not None else (lambda: None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel("_header_call")
        self._cancel("_rate_call")
        limiter = getattr(self, "limiter", None)
        if limiter is not None:
            limiter.release(self)
        forget = getattr(self.factory, "forget", None)  # our Site tracks its channels
        if forget is not None:
            forget(self)
        super().connectionLost(reason)


class ConnectionLimiter:
    """Counts open HTTP connections, in total and per client address."""

    def __init__(self) -> None:
        self.total = 0
        self.per_host: Dict[str, int] = {}

    def acquire(self, host: Optional[str], max_total: int, max_per_host: int) -> bool:
        if self.total >= max_total:
            _log.warn("refusing HTTP connection from {host}: {n} open (limit)", host=host,
                      n=self.total)
            return False
        if max_per_host and host is not None and self.per_host.get(host, 0) >= max_per_host:
            _log.warn("refusing HTTP connection from {host}: per-address limit {n}", host=host,
                      n=max_per_host)
            return False
        self.total += 1
        if host is not None:
            self.per_host[host] = self.per_host.get(host, 0) + 1
        return True

    def release(self, channel: Any) -> None:
        if getattr(channel, "_limiter_released", True):
            return
        channel._limiter_released = True
        self.total -= 1
        host = channel.limiter_host
        if host is not None:
            left = self.per_host.get(host, 1) - 1
            if left:
                self.per_host[host] = left
            else:
                self.per_host.pop(host, None)
