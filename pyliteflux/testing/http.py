"""HTTP in memory through the production ``Site``: our channel, its guards
and the request fast path, over a ``StringTransport`` — no ports.

Each request is one connection: the request's bytes go into a fresh
channel of the app's ``Site``; the response is parsed as it is written
(``Content-Length``, chunked, or none for HEAD/204/304) and the
connection is closed once it is complete, as a client would.
"""

from __future__ import annotations

import json
from typing import Any, Callable, List, Optional, Tuple
from urllib.parse import quote

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed
from twisted.web.http_headers import Headers

__all__ = ["TestResponse", "InMemoryHTTP", "build_request"]


class TestResponse:
    """A finished HTTP response: ``code``, ``headers``, ``body``, ``json()``, ``text()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, code: int, headers: Headers, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """The last value of a response header, or None."""
        values = self.headers.getRawHeaders(name)
        return values[-1] if values else None

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<TestResponse {self.code} {self.body[:60]!r}>"


def build_request(method: str, target: str, headers: List[Tuple[str, str]],
                  body: Optional[bytes]) -> bytes:
    """The bytes of one HTTP/1.1 request. As an HTTP client would, the target
    is percent-encoded where it is not ASCII (or holds spaces) and header
    values are UTF-8; a ``Content-Length`` given in ``headers`` is kept."""
    target = quote(target, safe=_TARGET_SAFE)
    lines = [f"{method} {target} HTTP/1.1".encode("ascii"), b"Host: testserver"]
    lines.extend(f"{name}: {value}".encode() for name, value in headers)
    if body is not None and not any(n.lower() == "content-length" for n, _ in headers):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


#: what a target may hold as it is (everything printable in ASCII but space)
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


class _ResponseParser:
    """Reads one HTTP/1.1 response from bytes as they arrive."""

    def __init__(self, head_request: bool) -> None:
        self.buffer = b""
        self.head_request = head_request
        self.code = 0
        self.headers = Headers()
        self.body: List[bytes] = []
        self._state = "head"
        self._left = 0
        self.complete = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while not self.complete and self._step():
            pass

    def _step(self) -> bool:
        if self._state == "head":
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            status, *lines = head.split(b"\r\n")
            self.code = int(status.split(b" ", 2)[1])
            if 100 <= self.code < 200:  # an interim response: the real one follows
                return True
            for line in lines:
                name, _, value = line.partition(b":")
                self.headers.addRawHeader(name.strip(), value.strip())
            if self.head_request or self.code in (204, 304):
                self.complete = True
            elif self.headers.getRawHeaders(b"transfer-encoding") == [b"chunked"]:
                self._state = "size"
            else:
                length = self.headers.getRawHeaders(b"content-length")
                self._left = int(length[0]) if length else -1
                self._state = "fixed"
            return True
        if self._state == "fixed":
            if self._left < 0:  # no length: the body runs to the close
                self.body.append(self.buffer)
                self.buffer = b""
                return False
            take = self.buffer[:self._left]
            self.body.append(take)
            self.buffer = self.buffer[len(take):]
            self._left -= len(take)
            self.complete = self._left == 0
            return False
        if self._state == "size":
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return False
            size = int(self.buffer[:end].split(b";")[0], 16)
            self.buffer = self.buffer[end + 2:]
            self._left = size
            self._state = "chunk" if size else "trailer"
            return True
        if self._state == "chunk":
            if len(self.buffer) < self._left + 2:
                return False
            self.body.append(self.buffer[:self._left])
            self.buffer = self.buffer[self._left + 2:]
            self._state = "size"
            return True
        # trailer: ends with an empty line
        end = self.buffer.find(b"\r\n")
        if end < 0:
            return False
        self.buffer = self.buffer[end + 2:]
        if end == 0:
            self.complete = True
        return True

    @property
    def until_close(self) -> bool:
        """A body without a length: it ends when the connection closes."""
        return self._state == "fixed" and self._left < 0

    def response(self) -> TestResponse:
        return TestResponse(self.code, self.headers, b"".join(self.body))


class _ClientTransport(StringTransport):
    """The client's end as the channel sees it: every write is parsed."""

    def __init__(self, on_data: Callable[[bytes], None], on_close: Callable[[], None],
                 peer: IPv4Address) -> None:
        super().__init__(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 80))
        self._on_data = on_data
        self._on_close = on_close

    def write(self, data: bytes) -> None:
        super().write(data)
        self._on_data(data)

    def writeSequence(self, seq: Any) -> None:
        self.write(b"".join(seq))

    def loseConnection(self) -> None:
        if not self.disconnecting:
            super().loseConnection()
            self._on_close()

    def abortConnection(self) -> None:
        self.loseConnection()


class InMemoryHTTP:
    """Sends requests into the production ``Site`` of an app.

    A response completed while the request's bytes are being delivered (a
    synchronous app) is there when ``request`` returns; one completed later
    is delivered a reactor turn after its last byte, once the channel has
    finished the request (so its background jobs have started, as for a
    real client that sees the response after the server sent it).
    """

    def __init__(self, site: Any, reactor: Any) -> None:
        self.site = site
        self._reactor = reactor
        self._next_port = 40000

    def request(self, data: bytes, head_request: bool = False) -> Deferred[TestResponse]:
        """Send the bytes of one request on a new connection; fires with the
        response once it is complete (the connection is then closed)."""
        self._next_port += 1
        peer = IPv4Address("TCP", "127.0.0.1", self._next_port)
        result: Deferred[TestResponse] = Deferred()
        parser = _ResponseParser(head_request)
        channel = self.site.buildProtocol(peer)
        if channel is None:  # refused (connection limits)
            result.errback(ConnectionDone("connection refused by the server's limits"))
            return result
        state: dict = {"done": False, "call": None, "delivering": True}

        def finish() -> None:
            if state["done"]:
                return
            state["done"] = True
            call = state["call"]
            if call is not None and call.active():
                call.cancel()
            channel.connectionLost(Failure(ConnectionDone()))
            if parser.complete or parser.until_close:
                result.callback(parser.response())
            elif parser.code:  # cut off: the server dropped it mid-body, on purpose or not
                result.errback(ResponseFailed([Failure(ConnectionDone(
                    "the response was cut off before its end"))]))
            else:
                result.errback(ConnectionDone("closed before a response"))

        def ended() -> None:  # the response is complete, or the server closed
            if not state["delivering"] and state["call"] is None:
                state["call"] = self._reactor.callLater(0, finish)

        def on_data(chunk: bytes) -> None:
            parser.feed(chunk)
            if parser.complete:
                ended()

        transport = _ClientTransport(on_data, ended, peer)
        channel.makeConnection(transport)
        channel.dataReceived(data)
        state["delivering"] = False
        if parser.complete or transport.disconnecting:
            finish()
        return result
