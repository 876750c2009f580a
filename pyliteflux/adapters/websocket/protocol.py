"""One WebSocket client: the TCP line protocol of SPEC §9 in text messages.

Autobahn does the RFC 6455 work (handshake, framing, masking, UTF-8
validation, close handshake, pings); this class is what the TCP
``LineProtocol`` is for a socket: each text message is one request through
the same pipeline, routes (``protocol="tcp"``) and middlewares, replies go
out in request order, and the connection is a push target from the moment
the handshake succeeds until it closes (whatever ``tcp_keep_alive`` says).

Output is bounded as on TCP: the protocol is the transport's push producer,
so when the socket's buffer fills we stop reading this client, and a client
more than ``max_output_buffer`` bytes behind is disconnected (counted as a
``slow_consumer`` drop). Replies and pushes are written as pre-built frames
(``frames.text_frame``), bypassing ``sendMessage``: its size check is the
client's limit, not ours, and a push is framed once for every client.
On the way in, ``dataReceived`` and ``onMessageEnd`` skip what autobahn
does per read or message for nobody (a debug line's fields while debug
logging is off, the ``message`` event while nothing observes it).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import txaio
from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol as _WS
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from ...core.requests import TCPRequest
from ...push.target import TopicsMixin
from ...twisted_internals import can_write_through, send_now
from ..commands import CommandSession
from ..common import AdapterContext
from ..lines import BOM
from .frames import WS_JSON, WS_XML, shutdown_message, text_frame

__all__ = ["WebSocketProtocol", "origin_allowed"]

_log = Logger(namespace="pyliteflux.websocket")
_OPEN = _WS.STATE_OPEN
_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}

#: what a txaio logger's method is when its level is off (a logger made at
#: "info" has it as ``debug``): ``dataReceived`` compares against it (# PERF)
_LOG_OFF = txaio.make_logger(level="info").debug  # type: ignore[attr-defined]

#: autobahn's read path without its debug line (a private method: without
#: it, as in some other autobahn version, every read takes the public path)
_READ = getattr(WebSocketServerProtocol, "_dataReceived", None)


def _strip_default_port(netloc: str, scheme: Optional[str] = None) -> str:
    host, sep, port = netloc.rpartition(":")
    if sep and "]" not in port and port in (
            (_DEFAULT_PORTS.get(scheme, ""),) if scheme else ("80", "443")):
        return host
    return netloc


def origin_allowed(origin: Optional[str], host: Optional[str], allowed: List[str]) -> bool:
    """The origin rule of SPEC §14: no ``Origin`` (not a browser), the same
    host as ``Host`` (default ports ignored), or listed in ``allowed``
    (``websocket_origins``; ``"*"`` allows every origin)."""
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if "*" in allowed or origin in (a.lower().rstrip("/") for a in allowed):
        return True
    scheme, sep, netloc = origin.partition("://")
    if not sep or not host or "/" in netloc:
        return False  # "null" (a file:// page, a sandbox) and junk: only when listed
    return _strip_default_port(netloc, scheme) == _strip_default_port(host.strip().lower())


@implementer(IPushProducer)
class WebSocketProtocol(CommandSession, WebSocketServerProtocol, TopicsMixin):  # type: ignore[misc]
    """One WebSocket client connection; a push target while open."""

    transport_name = "websocket"
    transport: Any
    factory: Any  # our WebSocketFactory (factory.py imports this module)

    def __init__(self, context: AdapterContext) -> None:
        super().__init__()
        self._start_session(context)
        self._backlog: List[bytes] = []  # messages that arrived while reading was paused
        self.client_address: Tuple[str, int] = ("", 0)
        self.client_id = ""
        self._direct = False
        self._observed = False  # autobahn's ``on()`` was used: fire its events
        #: called once when the connection closes (an HTTP engine's slot release)
        self.on_close: Optional[Callable[[], None]] = None

    # -- lifecycle -------------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        host = getattr(peer, "host", None)
        port = getattr(peer, "port", None) if host is not None else id(self)
        self.client_address = (host or "unix", port or 0)
        self.client_id = f"ws:{self.client_address[0]}:{self.client_address[1]}"
        transport = self.transport
        try:  # the HTTP channel was the transport's producer until the upgrade
            transport.unregisterProducer()
        except Exception:  # pragma: no cover - a transport without one
            pass
        transport.registerProducer(self, True)
        self._direct = can_write_through(transport)
        super().connectionMade()

    def onConnect(self, request: Any) -> None:
        headers = request.headers
        if not origin_allowed(headers.get("origin"), headers.get("host"),
                              self._config.websocket_origins):
            _log.info("refusing WebSocket {client}: origin {origin!r} not allowed",
                      client=self.client_id, origin=headers.get("origin"))
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "Origin not allowed")
        return None  # no subprotocol

    def onOpen(self) -> None:
        if self.closing:
            return
        self.hub.register(self)
        self.registered = True

    def connectionLost(self, reason: Any = None) -> None:
        try:
            super().connectionLost(reason)
        finally:
            call = getattr(self, "closeHandshakeTimeoutCall", None)
            if call is not None and call.active():  # autobahn leaves it behind
                call.cancel()
            self._end_session()
            self._backlog = []
            on_close, self.on_close = self.on_close, None
            if on_close is not None:
                on_close()

    @property
    def push_format(self) -> str:
        """Pushes follow the format of the client's latest request."""
        return WS_XML if self.data_type == "xml" else WS_JSON

    def _reading_resumed(self) -> None:
        self.transport.resumeProducing()
        while self._backlog and not self._read_pauses and not self.closing:
            self._handle(self._backlog.pop(0))

    # -- autobahn's per-message hooks, without their unused extras -----------------

    def dataReceived(self, data: bytes) -> None:
        # PERF: autobahn's ``dataReceived`` formats the fields of a debug line
        # (``hltype``/``hlval``: ``inspect`` calls and string styling) on every
        # read, even when debug logging is off; only go through it when it is on
        if _READ is not None and self.log.debug is _LOG_OFF:
            _READ(self, data)
        else:
            super().dataReceived(data)

    def on(self, event: str, handler: Any) -> None:
        """autobahn's observer API: once used, ``onMessageEnd`` fires its
        ``message`` event again."""
        self._observed = True
        super().on(event, handler)

    def onMessageEnd(self) -> None:
        # PERF: autobahn's ``onMessageEnd`` also fires its ``message`` event for
        # ``on("message", ...)`` observers: a txaio Deferred and two callbacks
        # per message when nothing observes. The rest is what it does.
        if self._observed:
            super().onMessageEnd()
            return
        if not self.failedByMe:
            payload = b"".join(self.message_data)
            if self.trackedTimings:
                self.trackedTimings.track("onMessage")
            self.onMessage(payload, self.message_is_binary)
        self.message_data = None  # type: ignore[assignment]

    # -- requests --------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.closing:
            return
        if isBinary:
            _log.info("closing WebSocket {client}: binary message", client=self.client_id)
            self.sendCloseFrame(1003, b"text messages only", isReply=False)
            return
        if self._read_pauses:  # autobahn hands over every frame of a read at once
            self._backlog.append(payload)
            return
        self._handle(payload)

    def _handle(self, line: bytes) -> None:
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(BOM):
            line = line[3:]
        if not line or line.isspace():
            return
        self.handle_command(line)

    def _send_reply(self, line: bytes, request: Optional[TCPRequest]) -> None:
        if self._write(text_frame(line), False) and request is not None:
            self._jobs.start_after(request)

    # -- output --------------------------------------------------------------------------

    def send_push(self, payload: bytes) -> bool:
        """Write one push, framed once for many clients; disconnect a client
        too far behind. False if it is gone."""
        return self._write(payload, self._direct)

    def _write(self, payload: bytes, direct: bool) -> bool:
        if self.closing or self.state != _OPEN:
            return False
        # PERF: a push goes straight to the socket when nothing is queued (as on
        # TCP: fan-out to 2,000 clients 65 -> 37 ms); replies keep Twisted's
        # write, which batches them per reactor turn (round trips 0.68 -> 0.85
        # of bare autobahn with the direct write)
        if direct:
            send_now(self.transport, payload)
        else:
            self.transport.write(payload)
        if self._output_paused:
            self._unsent += len(payload)
            if self._unsent > self._max_output:
                _log.warn("disconnecting slow WebSocket client {client}: over {limit} bytes "
                          "unsent", client=self.client_id, limit=self._max_output)
                self.hub.stats.drop("slow_consumer")
                self.closing = True
                self.transport.abortConnection()
                return False
        return True

    def send_shutdown(self) -> bool:
        """The server is going away: a ``{"type": "shutdown"}`` message, then a
        1001 close. False if there was nobody to tell."""
        if self.closing:
            return False
        if self.state == _OPEN:
            self._write(shutdown_message(self.data_type), False)
            self.closing = True
            # (sendClose takes application codes only: 1000 or 3000-4999)
            self.sendCloseFrame(1001, b"server shutting down", isReply=False)
        else:  # still in the opening handshake
            self.closing = True
            self.transport.loseConnection()
        return True
