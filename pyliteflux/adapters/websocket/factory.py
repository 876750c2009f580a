"""The WebSocket side of an HTTP listener: autobahn's factory with every
limit set from our config, the ``twisted.web`` resource that upgrades a
request, and the entry point any HTTP engine calls to hand a connection over.

Autobahn's defaults are unlimited or permissive (no size limit, every
origin, compression offers accepted by a user hook, no pings); each option
is set here explicitly, once, when the factory is made:

=========================  ==================================================
message and frame size     ``max_line_length`` (1009 beyond it)
UTF-8                      validated (1007 on invalid text)
compression                off: no ``permessage-deflate`` offer is accepted
pings                      every ``websocket_ping_interval`` s; no pong (or
                           any traffic) within one more interval closes
opening handshake          ``header_timeout`` s (5 when that is off)
closing handshake          ``close_handshake_timeout`` s (1)
origin                     ``protocol.origin_allowed`` in ``onConnect`` (403)
failures                   a close frame with the code, not a bare drop
=========================  ==================================================
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.protocols.policies import ProtocolWrapper
from twisted.web.server import NOT_DONE_YET

from ..common import AdapterContext, ConnectionSet
from .protocol import WebSocketProtocol

__all__ = ["WebSocketFactory", "WebSocketUpgradeResource", "is_upgrade"]


def is_upgrade(request: Any) -> bool:
    """Whether a ``twisted.web`` request asks for a WebSocket (``Upgrade: websocket``)."""
    values = request.requestHeaders.getRawHeaders(b"upgrade")
    return bool(values) and any(b"websocket" in v.lower() for v in values)


class _Timers:
    """What autobahn's protocols ask ``factory._batched_timer`` for: plain
    ``reactor.callLater`` calls. Autobahn's own batches timers into 0.2 s
    buckets that stay scheduled after every timer in them is cancelled
    (a reactor left dirty for ``trial``, and stray wake-ups); Twisted's
    timer heap holds 10,000 connections' ping timers without help."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def call_later(self, delay: float, func: Callable[..., Any], *args: Any,
                   **kwargs: Any) -> Any:
        return self._reactor.callLater(delay, func, *args, **kwargs)


def _no_compression(offers: Any) -> None:
    return None  # accept no permessage-* offer: compression stays off


class WebSocketFactory(WebSocketServerFactory, ConnectionSet):
    """Builds ``WebSocketProtocol`` connections and knows the open ones
    (folded into the HTTP ``Site``'s ``Drainable`` for shutdown)."""

    protocol = WebSocketProtocol  # type: ignore[assignment]
    noisy = False
    side = "websocket"
    #: seconds a close handshake may take before the connection is dropped
    close_handshake_timeout = 1.0

    def __init__(self, context: AdapterContext) -> None:
        super().__init__(reactor=context.reactor)
        self.context = context
        self._batched_timer = _Timers(self.reactor)
        self.configure()

    def configure(self) -> None:
        """(Re)apply the config's limits to connections made from now on."""
        config = self.context.config
        limit = config.max_line_length
        ping = float(config.websocket_ping_interval or 0)
        self.setProtocolOptions(
            webStatus=False,
            utf8validateIncoming=True,
            requireMaskedClientFrames=True,
            maskServerFrames=False,
            maxFramePayloadSize=limit,
            maxMessagePayloadSize=limit,
            autoFragmentSize=0,
            failByDrop=False,
            echoCloseCodeReason=False,
            openHandshakeTimeout=float(config.header_timeout or 5.0),
            closeHandshakeTimeout=self.close_handshake_timeout,
            tcpNoDelay=True,
            perMessageCompressionAccept=_no_compression,
            autoPingInterval=ping,
            autoPingTimeout=ping,
            autoPingRestartOnAnyTraffic=True,
            serveFlashSocketPolicy=False,
            allowedOrigins=["*"],  # SPEC §14's rule is ours: WebSocketProtocol.onConnect
            allowNullOrigin=True,
            maxConnections=0,  # counted by the HTTP side's connection limits
            trustXForwardedFor=0,
        )

    def buildProtocol(self, addr: Any) -> WebSocketProtocol:  # type: ignore[override]
        proto = WebSocketProtocol(self.context)
        proto.factory = self
        self.track(proto)
        return proto

    # -- the entry point for HTTP engines --------------------------------------------

    def take_over(self, transport: Any, handshake: bytes,
                  on_close: Optional[Callable[[], None]] = None) -> WebSocketProtocol:
        """Turn an HTTP connection into a WebSocket one.

        For any HTTP engine (twisted.web here, another one elsewhere): once
        it has parsed a request for ``websocket_path`` with ``Upgrade:
        websocket``, it stops using ``transport`` (detaches its own protocol,
        timers and bookkeeping) and calls this with the request's raw bytes
        (request line, headers, blank line). Autobahn answers the handshake
        (101, or 403 for a foreign ``Origin``) and the connection becomes a
        push target. ``on_close`` is called once when it closes, e.g. to give
        back the engine's connection slot. ``transport`` may be TCP or TLS.
        """
        proto = self.buildProtocol(transport.getPeer())
        proto.on_close = on_close
        if isinstance(transport, ProtocolWrapper):  # TLS wrapping protocol
            transport.wrappedProtocol = proto  # type: ignore[assignment]
        elif isinstance(getattr(transport, "protocol", None), ProtocolWrapper):
            transport.protocol.wrappedProtocol = proto
        else:
            transport.protocol = proto  # type: ignore[assignment]
        proto.makeConnection(transport)
        resume = getattr(transport, "resumeProducing", None)
        if resume is not None:  # the HTTP side paused reading while it handled the request
            resume()
        proto.dataReceived(handshake)
        return proto

    # -- Drainable (through the Site) ------------------------------------------------------

    def busy(self) -> List[str]:
        return [f"{p.client_id} ({p.pending_count} pending)" for p in self if p.pending_count]

    def say_goodbye(self) -> int:
        """A ``{"type": "shutdown"}`` message and a 1001 close for each client."""
        return sum(1 for proto in self if proto.transport is not None and proto.send_shutdown())

    def abort(self) -> List[str]:
        aborted = []
        for proto in self:
            aborted.append(f"websocket {proto.client_id}")
            if proto.transport is not None:
                proto.transport.abortConnection()
        return aborted


def handshake_bytes(request: Any) -> bytes:
    """The raw opening handshake of a parsed ``twisted.web`` request (what
    autobahn parses again: it is not written to take a parsed request)."""
    parts = [request.method, b" ", request.uri, b" HTTP/1.1\r\n"]
    for name, values in request.requestHeaders.getAllRawHeaders():
        parts += [name, b": ", b",".join(values), b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)


class WebSocketUpgradeResource(WebSocketResource):
    """Autobahn's ``WebSocketResource``, upgrading through
    ``WebSocketFactory.take_over`` so that our channel lets the connection
    go cleanly (its timers stop, its connection slot is kept until the
    WebSocket closes). Mount it in any ``twisted.web`` tree; our ``Site``
    routes ``websocket_path`` to it."""

    def __init__(self, factory: WebSocketFactory) -> None:
        super().__init__(factory)
        self.factory = factory

    def render(self, request: Any) -> Any:
        channel = request.channel
        transport = channel.transport
        if transport is None or not is_upgrade(request):
            request.setResponseCode(426)
            request.setHeader(b"Upgrade", b"websocket")
            request.setHeader(b"Content-Type", b"application/json")
            return b'{"error": "Upgrade Required"}'
        detach = getattr(channel, "detach", None)
        on_close = detach() if detach is not None else None
        channel.transport = None
        self.factory.take_over(transport, handshake_bytes(request), on_close)
        return NOT_DONE_YET
