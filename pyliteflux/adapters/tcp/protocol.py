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
from typing import Any, List, Optional, Tuple

from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer, ITCPTransport
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from ...core.codec import data_to_xml, dumps_json_line
from ...core.requests import TCPRequest
from ...push.target import TopicsMixin
from ...twisted_internals import can_write_through, send_now
from ..commands import CommandSession
from ..common import AdapterContext, ConnectionSet
from ..lines import BOM, encode_reply

__all__ = ["LineProtocol", "LineFactory"]

_log = Logger(namespace="pyliteflux.tcp")

@implementer(IPushProducer, IHalfCloseableProtocol)
class LineProtocol(CommandSession, LineOnlyReceiver, TimeoutMixin, TopicsMixin):
    """One TCP client connection; a push target while it is kept alive."""

    delimiter = b"\n"
    transport: Any  # a Twisted transport (zope interfaces type poorly)
    transport_name = "tcp"
    factory: "LineFactory"

    def __init__(self, context: AdapterContext) -> None:
        self._start_session(context)
        config = self._config
        self.MAX_LENGTH = config.max_line_length
        self.keep_alive = config.tcp_keep_alive
        self._parts: List[bytes] = []
        self._buffered = 0
        self._backlog = b""
        self._read_closed = False
        self._direct = False
        self._answered_one = False
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
        if factory.count > self._config.max_tcp_connections:
            _log.warn("refusing {client}: too many TCP connections", client=self.client_id)
            self._write_line(dumps_json_line({"error": "Too many connections"}))
            self.close()
            return
        self.transport.registerProducer(self, True)
        self._direct = can_write_through(self.transport)
        if self._config.tcp_keepalive_probes and ITCPTransport.providedBy(self.transport):
            self.transport.setTcpKeepAlive(True)  # the kernel notices dead peers
        if self.keep_alive:
            self.hub.register(self)
            self.registered = True
        idle = self._config.tcp_idle_timeout
        if idle:
            self.setTimeout(idle)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.count -= 1
        self.setTimeout(None)
        self._end_session()

    def timeoutConnection(self) -> None:
        if self._pending:  # a command still in flight: not idle; look again later
            self.setTimeout(self.timeOut)  # (the expired call is gone: arm a new one)
            return
        _log.info("closing idle TCP client {client}", client=self.client_id)
        self._write_line(encode_reply({"error": "Idle timeout"}, self.data_type))
        self.close()

    @property
    def push_format(self) -> str:
        """Pushes follow the format of the client's latest request."""
        return "xml-line" if self.data_type == "xml" else "json-line"

    def close(self) -> None:
        """Finish sending what is queued, then close."""
        if not self.closing:
            self.closing = True
            self.transport.loseConnection()

    def _reading_resumed(self) -> None:
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
        if line.startswith(BOM):  # a byte-order mark (once) before the request
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
        self.handle_command(line)

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

    _drained = _maybe_finish_half_close  # every reply is out: a half-close can finish

    def _send_reply(self, line: bytes, request: Optional[TCPRequest]) -> None:
        if not self.push_line(line + b"\n"):
            return
        if request is not None:
            self._jobs.start_after(request)
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
            send_now(self.transport, data)  # straight to the socket when nothing is queued
        else:
            self.transport.write(data)
        if self._output_paused:
            self._unsent += len(data)
            if self._unsent > self._max_output:
                _log.warn("disconnecting slow TCP client {client}: over {limit} bytes unsent",
                          client=self.client_id, limit=self._max_output)
                self.hub.stats.drop("slow_consumer")
                self.closing = True
                self.transport.abortConnection()
                return False
        return True

    def send_push(self, payload: bytes) -> bool:
        """The push-target side: a push payload already ends in its newline."""
        return self.push_line(payload)

    def send_shutdown(self) -> None:
        """Tell the client the server is going away, then close cleanly."""
        if not self.closing:
            line = (data_to_xml("shutdown", None) if self.data_type == "xml"
                    else json.dumps({"type": "shutdown"}).encode())
            self._write_line(line)
            self.close()


class LineFactory(Factory, ConnectionSet):
    """Builds ``LineProtocol`` connections, counts them, and drains them on
    shutdown (the ``service.shutdown.Drainable`` side of TCP)."""

    protocol = LineProtocol  # type: ignore[assignment]
    noisy = False
    side = "tcp"

    def __init__(self, context: AdapterContext) -> None:
        self.context = context
        self.count = 0
        if context.metrics is not None:
            context.metrics.watch(self)  # its open connections are a gauge, read when scraped

    def buildProtocol(self, addr: Any) -> LineProtocol:  # type: ignore[override]
        proto = LineProtocol(self.context)
        proto.factory = self
        self.track(proto)
        return proto

    # -- Drainable ---------------------------------------------------------------------

    def close_idle(self) -> None:
        """Nothing to do: a TCP client is told goodbye in ``say_goodbye``."""

    def busy(self) -> List[str]:
        return [f"{p.client_id} ({p.pending_count} pending)" for p in self if p.pending_count]

    def say_goodbye(self) -> int:
        """Send each client a ``{"type": "shutdown"}`` line and close it
        cleanly (its queued output is flushed first). Returns how many."""
        told = 0
        for proto in self:
            if not proto.closing and proto.transport is not None:
                proto.send_shutdown()
                told += 1
        return told

    def abort(self) -> List[str]:
        aborted = []
        for proto in self:
            aborted.append(f"tcp {proto.client_id}")
            transport = proto.transport
            if transport is not None:
                getattr(transport, "abortConnection", transport.loseConnection)()
        return aborted
