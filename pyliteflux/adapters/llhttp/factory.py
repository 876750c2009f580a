"""The llhttp engine's factory: connection caps, the access log, and the
HTTP side of graceful shutdown (``service.shutdown.Drainable``), as our
``twisted.web`` Site has them."""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.internet.protocol import Factory

from ..common import AdapterContext, ConnectionSet, log_response
from ..http.channel import ConnectionLimiter
from .protocol import LLHTTPProtocol
from .respond import Responder

__all__ = ["LLHTTPFactory"]



class LLHTTPFactory(Factory, ConnectionSet):
    """Builds the llhttp engine's connections for one app."""

    noisy = False
    side = "http"

    def __init__(self, context: AdapterContext, reactor: Optional[Any] = None) -> None:
        self.context = context
        self.config = context.config
        self.jobs = context.jobs
        self.responder = Responder(context)
        self.limiter = ConnectionLimiter()
        self._reactor = reactor
        self.metrics = metrics = context.metrics
        if metrics is not None:
            metrics.watch(self)  # its open connections are a gauge, read when scraped

    @property
    def reactor(self) -> Any:
        return self._reactor if self._reactor is not None else self.context.reactor

    def buildProtocol(self, addr: Any) -> Optional[LLHTTPProtocol]:
        config = self.config
        host = getattr(addr, "host", None)
        if not self.limiter.acquire(host, config.max_http_connections,
                                    config.max_http_connections_per_ip):
            return None  # Twisted closes the connection at once
        proto = LLHTTPProtocol(self, addr)
        proto.limiter_host = host  # type: ignore[attr-defined]
        proto._limiter_released = False  # type: ignore[attr-defined]
        self.track(proto)
        return proto

    def connection_closed(self, proto: LLHTTPProtocol) -> None:
        self.limiter.release(proto)
        self.forget(proto)

    def log(self, raw: Any) -> None:
        """Count a finished response and write its access log line."""
        log_response(self.metrics, self.config.info, raw, getattr(raw.channel.peer, "host", "-"))

    # -- Drainable -----------------------------------------------------------------------

    def close_idle(self) -> None:
        """Close idle keep-alive connections; busy ones close after the
        response in flight (``Connection: close`` when not started yet)."""
        now = self.context.reactor.seconds()  # the shutdown's clock
        for proto in self:
            current = proto.current
            if current is None and not proto._queue:
                if not self.spare_fresh(proto, now):
                    proto.transport.loseConnection()
                continue
            proto._input_closed = True
            for raw in [current, *proto._queue]:
                if raw is not None and not raw.startedWriting:
                    raw.close_after = True

    def busy(self) -> List[str]:
        out = []
        owns = self.responder.sse.owns  # an open SSE stream is long-lived, not in flight
        for proto in self:
            for raw in [proto.current, *proto._queue]:
                if raw is not None and not owns(raw):
                    out.append(f"{raw.method.decode('latin-1')} {raw.uri.decode('latin-1')}")
        return out

    def _websocket(self) -> Any:
        return self.context.shared.get("websocket_factory")

    def say_goodbye(self) -> int:
        """WebSocket clients get ``{"type": "shutdown"}`` and a 1001 close; SSE
        streams end. (Other HTTP responses end with ``Connection: close``.)"""
        told = self.responder.sse.say_goodbye()
        websocket = self._websocket()
        if websocket is not None:
            told += websocket.say_goodbye()
        return told

    def open_count(self) -> int:
        websocket = self._websocket()
        return super().open_count() + (websocket.open_count() if websocket is not None else 0)

    def abort(self) -> List[str]:
        aborted = self.abort_connections("http")
        websocket = self._websocket()
        if websocket is not None:
            aborted.extend(websocket.abort())
        return aborted
