"""The TCP adapter: a line protocol over the same pipeline as HTTP.

Each ``\\n``-terminated line (a trailing ``\\r`` is dropped) is one request in
JSON, XML or raw form (see ``parse_line``); each reply is one line in the
request's format, in request order even when handlers finish out of order.

Framing is ``LineOnlyReceiver``'s interface with a linear-time buffer:
Twisted's own line buffers re-copy the whole pending line on every chunk,
which is quadratic for a client that trickles a long line. Output is
watched through the producer API: when the transport's buffer is full we
stop reading that client, and a client that falls more than
``max_output_buffer`` bytes behind is disconnected.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer, ITCPTransport
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from .codec import (
    DecodeError,
    data_to_xml,
    dumps_json,
    dumps_json_line,
    loads_json,
    parse_xml,
    xml_to_data,
)
from .pipeline import _PLAIN
from .requests import TCPRequest
from .responses import HTTPResponse, StreamResponse
from .writethrough import can_write_through, send

if TYPE_CHECKING:  # pragma: no cover
    from .server import Server

__all__ = ["LineProtocol", "LineFactory", "parse_line", "encode_reply", "encode_push", "ParsedLine"]

_log = Logger(namespace="pyliteflux.tcp")

#: (command, data, data_type, request id, parsed XML element, headers)
ParsedLine = Tuple[str, Any, str, Any, Any, Optional[Dict[str, Any]]]


class LineError(Exception):
    """A line that cannot become a request; answered with an error line."""

    def __init__(self, message: str, data_type: str = "json", request_id: Any = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data_type = data_type
        self.request_id = request_id
        self.extra = extra

    def body(self) -> Dict[str, Any]:
        return {"error": self.message, **self.extra}


_BOM = b"\xef\xbb\xbf"


def parse_line(line: bytes) -> ParsedLine:
    """Decode one request line; raises ``LineError`` for anything malformed."""
    first = line[:1]
    if first in (b" ", b"\t"):
        first = line.lstrip()[:1]
    data_type = "json" if first == b"{" else "xml" if first == b"<" else "raw"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise LineError("Invalid UTF-8", data_type) from None
    if data_type == "json":
        try:
            obj = loads_json(text)
        except DecodeError as exc:
            raise LineError("Invalid JSON", "json", detail=str(exc)) from None
        if not isinstance(obj, dict):
            raise LineError("A JSON request must be an object", "json")
        request_id = obj.get("id")
        command = obj.get("command")
        if not isinstance(command, str) or not command:
            raise LineError("Missing or invalid 'command'", "json", request_id)
        headers = obj.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise LineError("'headers' must be an object", "json", request_id)
        return command, obj.get("data"), "json", request_id, None, headers
    if data_type == "xml":
        try:
            element = parse_xml(text)
        except DecodeError as exc:
            raise LineError("Invalid XML", "xml", detail=str(exc)) from None
        request_id = element.get("id")
        command = element.get("command")
        if element.tag != "request" or not command:
            raise LineError("Expected <request command=\"...\">", "xml", request_id)
        return command, xml_to_data(element), "xml", request_id, element, None
    parts = text.strip().split(None, 1)
    return parts[0], (parts[1] if len(parts) > 1 else ""), "raw", None, None, None


def _one_line(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _plain(value: Any) -> Any:
    """The payload a TCP reply carries for a handler's return value."""
    if isinstance(value, HTTPResponse):
        return value.data
    if isinstance(value, tuple) and len(value) in (2, 3) and isinstance(value[1], int):
        return _plain(value[0])
    if isinstance(value, StreamResponse):
        value.close()
        return {"error": "StreamResponse is not supported over TCP"}
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value


def encode_reply(value: Any, data_type: str, request_id: Any = None,
                 encoder: Optional[type] = None) -> bytes:
    """One reply line (without the newline) in the request's format."""
    if type(value) is dict and data_type == "json" and encoder is None:  # the common case
        if request_id is not None:
            value = {**value, "id": request_id}
        return dumps_json(value)
    if isinstance(value, HTTPResponse):
        encoder = getattr(value, "json_encoder", None) or encoder
    value = _plain(value)
    if data_type == "xml":
        attrs = {"id": str(request_id)} if request_id is not None else None
        return data_to_xml("response", value, attrs, default=_xml_default(encoder))
    if data_type == "raw":
        if isinstance(value, str):
            return _one_line(value).encode("utf-8")
        if isinstance(value, (dict, list)):
            return dumps_json_line(value, encoder)
        return _one_line("" if value is None else str(value)).encode("utf-8")
    if request_id is not None:
        value = {**value, "id": request_id} if isinstance(value, dict) else {
            "id": request_id, "result": value}
    return dumps_json_line(value, encoder)


def _xml_default(encoder: Optional[type]) -> Any:
    """What XML replies use for values XML has no form for: the JSON
    encoder's ``default`` when the response names one (else none: a 500)."""
    return encoder().default if encoder is not None else None


def encode_push(message: Any, data_type: str) -> bytes:
    """A push line for a client that speaks ``data_type``."""
    if data_type == "xml":
        return data_to_xml("push", message)
    return dumps_json_line({"type": "push", "data": message})


@implementer(IPushProducer, IHalfCloseableProtocol)
class LineProtocol(LineOnlyReceiver, TimeoutMixin):
    """One TCP client connection."""

    delimiter = b"\n"
    transport: Any  # a Twisted transport (zope interfaces type poorly)

    def __init__(self, server: "Server") -> None:
        self.server = server
        self._dispatch = server.pipeline.dispatch
        self._jobs = server.jobs
        config = server.config
        self.MAX_LENGTH = config.max_line_length
        self.keep_alive = config.tcp_keep_alive
        self._max_output = config.max_output_buffer
        self._max_pending = config.max_pending_per_connection
        self._parts: List[bytes] = []
        self._buffered = 0
        self._backlog = b""
        self._read_closed = False
        self._direct = False
        self._pending: List[List[Any]] = []  # [reply bytes or None, request]
        self._read_pauses: set = set()
        self._output_paused = False
        self._unsent = 0
        self.closing = False
        self._answered_one = False
        self.registered = False
        self.data_type = "json"  # format of the latest request: pushes use it
        self.client_address: Tuple[str, int] = ("", 0)
        self.client_id = ""

    # -- connection lifecycle ---------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        host = getattr(peer, "host", None)
        if host is None:
            host, port = "unix", id(self)
        else:
            port = peer.port
        self.client_address = (host, port)
        self.client_id = f"{host}:{port}"
        factory = self.factory
        factory.count += 1
        if factory.count > self.server.config.max_tcp_connections:
            _log.warn("refusing {client}: too many TCP connections", client=self.client_id)
            self._write_line(dumps_json_line({"error": "Too many connections"}))
            self.close()
            return
        self.transport.registerProducer(self, True)
        self._direct = can_write_through(self.transport)
        if self.server.config.tcp_keepalive_probes and ITCPTransport.providedBy(self.transport):
            self.transport.setTcpKeepAlive(True)  # the kernel notices dead peers
        if self.keep_alive:
            self.server.connections.register(self.client_id, self)
            self.registered = True
        idle = self.server.config.tcp_idle_timeout
        if idle:
            self.setTimeout(idle)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.count -= 1
        self.closing = True
        self.setTimeout(None)
        if self.registered:
            self.server.connections.unregister(self.client_id, self)
            self.registered = False
        for slot in self._pending:
            pending = slot[2]
            if pending is not None and not pending.called:
                pending.cancel()
        self._pending = []

    def timeoutConnection(self) -> None:
        if self._pending:  # a command still in flight: not idle; look again later
            self.setTimeout(self.timeOut)  # (the expired call is gone: arm a new one)
            return
        _log.info("closing idle TCP client {client}", client=self.client_id)
        self._write_line(encode_reply({"error": "Idle timeout"}, self.data_type))
        self.close()

    @property
    def pending_count(self) -> int:
        """Commands received on this connection whose replies are not sent yet."""
        return len(self._pending)

    def close(self) -> None:
        """Finish sending what is queued, then close."""
        if not self.closing:
            self.closing = True
            self.transport.loseConnection()

    # -- IPushProducer: the transport tells us when our output backs up ------------

    def pauseProducing(self) -> None:
        # Twisted may call this again on every write while the buffer is
        # over its limit: only the first call starts the count.
        if not self._output_paused:
            self._output_paused = True
            self._unsent = 0
            self._pause_reading("output")

    def resumeProducing(self) -> None:
        self._output_paused = False
        self._unsent = 0
        self._resume_reading("output")

    def stopProducing(self) -> None:
        self.closing = True

    def _pause_reading(self, reason: str) -> None:
        if not self._read_pauses:
            self.transport.pauseProducing()
        self._read_pauses.add(reason)

    def _resume_reading(self, reason: str) -> None:
        if reason not in self._read_pauses:
            return
        self._read_pauses.discard(reason)
        if not self._read_pauses and not self.closing:
            if not self._read_closed:
                self.transport.resumeProducing()
            if self._backlog:
                backlog, self._backlog = self._backlog, b""
                self.dataReceived(backlog)
                self._maybe_finish_half_close()

    # -- framing -------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.timeOut:
            self.resetTimeout()
        start = 0
        find = data.find
        while not self.closing:
            if self._read_pauses:
                self._backlog += data[start:]
                return
            i = find(b"\n", start)
            if i < 0:
                if start < len(data):
                    self._parts.append(data[start:])
                    self._buffered += len(data) - start
                    if self._buffered > self.MAX_LENGTH:
                        self.lineLengthExceeded(b"")
                return
            if self._parts:
                self._parts.append(data[start:i])
                line = b"".join(self._parts)
                self._parts = []
                self._buffered = 0
            else:
                line = data[start:i]
            start = i + 1
            if len(line) > self.MAX_LENGTH + 1:
                self.lineLengthExceeded(line)
                return
            self.lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        _log.warn("TCP client {client} sent a line over {limit} bytes; closing",
                  client=self.client_id, limit=self.MAX_LENGTH)
        self._parts = []
        self._write_line(dumps_json_line({"error": "Line too long", "limit": self.MAX_LENGTH}))
        self.close()

    # -- requests ---------------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(_BOM):  # a byte-order mark (once) before the request
            line = line[3:]
        if len(line) > self.MAX_LENGTH:
            self.lineLengthExceeded(line)
            return
        if not line or line.isspace():
            return
        if not self.keep_alive:
            if self._answered_one:
                return  # without keep-alive a connection carries one request
            self._answered_one = True
        try:
            command, data, data_type, request_id, element, headers = parse_line(line)
        except LineError as err:
            self._queue_reply(encode_reply(err.body(), err.data_type, err.request_id), None)
            return
        self.data_type = data_type
        request = TCPRequest(
            command, data, data_type, self.client_address, self._jobs,
            request_id=request_id, line=line, element=element,
            headers=headers, connection=self, client_id=self.client_id,
        )
        value = self._dispatch(request)
        if type(value) not in _PLAIN and isinstance(value, Deferred):
            slot: List[Any] = [None, request, value]
            self._pending.append(slot)
            value.addCallback(self._async_done, slot)
            value.addErrback(self._async_failed, slot)
            if len(self._pending) >= self._max_pending:
                self._pause_reading("pending")
        elif self._pending:
            self._pending.append([self._encode(value, request), request, None])
        else:
            self._send_reply(self._encode(value, request), request)

    def _encode(self, value: Any, request: TCPRequest) -> bytes:
        try:
            return encode_reply(value, request.data_type, request.id)
        except Exception:
            _log.failure("cannot encode the reply to {request!r}", request=request)
            return encode_reply({"error": "Internal Server Error"}, request.data_type, request.id)

    def _queue_reply(self, line: bytes, request: Optional[TCPRequest]) -> None:
        if self._pending:
            self._pending.append([line, request, None])
        else:
            self._send_reply(line, request)

    def _async_done(self, value: Any, slot: List[Any]) -> None:
        slot[0] = self._encode(value, slot[1])
        slot[2] = None
        self._flush()

    def _async_failed(self, failure: Any, slot: List[Any]) -> None:
        if self.closing:
            return
        _log.failure("TCP request failed", failure=failure)
        slot[0] = encode_reply({"error": "Internal Server Error"}, slot[1].data_type, slot[1].id)
        slot[2] = None
        self._flush()

    # -- half-close: `printf 'cmd\n' | nc host port` sends its lines, then EOF --------

    def readConnectionLost(self) -> None:
        """The client is done sending: answer what it sent, then close."""
        self._read_closed = True
        if self._parts and not self.closing and not self._read_pauses:
            line = b"".join(self._parts)  # a last line without its newline
            self._parts = []
            self._buffered = 0
            self.lineReceived(line)
        self._maybe_finish_half_close()

    def writeConnectionLost(self) -> None:
        self.close()

    def _maybe_finish_half_close(self) -> None:
        if self._read_closed and not self._pending and not self._backlog:
            self.close()

    def _flush(self) -> None:
        pending = self._pending
        while pending and pending[0][0] is not None:
            line, request, _ = pending.pop(0)
            self._send_reply(line, request)
        if len(pending) < self._max_pending:
            self._resume_reading("pending")
        if not pending:
            self._maybe_finish_half_close()

    def _send_reply(self, line: bytes, request: Optional[TCPRequest]) -> None:
        if not self.push_line(line + b"\n"):
            return
        if request is not None and request._bg:
            self.server.jobs.submit_all(request._bg.take())
        if not self.keep_alive:
            self.close()

    # -- output --------------------------------------------------------------------------

    def _write_line(self, line: bytes) -> bool:
        """Write one line (adding its newline)."""
        return self.push_line(line + b"\n")

    def push_line(self, data: bytes) -> bool:
        """Write bytes that already end in a newline (a push line encoded once
        for many clients); disconnect a client that is too far behind.
        False if the client is gone."""
        if self.closing:
            return False
        if self._direct:
            send(self.transport, data)  # straight to the socket when nothing is queued
        else:
            self.transport.write(data)
        if self._output_paused:
            self._unsent += len(data)
            if self._unsent > self._max_output:
                _log.warn("disconnecting slow TCP client {client}: over {limit} bytes unsent",
                          client=self.client_id, limit=self._max_output)
                self.closing = True
                self.transport.abortConnection()
                return False
        return True

    def send_shutdown(self) -> None:
        """Tell the client the server is going away, then close cleanly."""
        if not self.closing:
            line = (data_to_xml("shutdown", None) if self.data_type == "xml"
                    else json.dumps({"type": "shutdown"}).encode())
            self._write_line(line)
            self.close()


class LineFactory(Factory):
    """Builds ``LineProtocol`` connections for a server and counts them."""

    protocol = LineProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(self, server: "Server") -> None:
        self.server = server
        self.count = 0

    def buildProtocol(self, addr: Any) -> LineProtocol:
        proto = LineProtocol(self.server)
        proto.factory = self
        return proto
