"""The WebSocket upgrade for HTTP engines other than twisted.web (llhttp).

The engine has parsed the handshake request; this builds the WebSocket
protocol of the app's shared ``WebSocketFactory`` and hands it the request's
bytes again, so autobahn answers the handshake itself (101, or 403 for a
foreign ``Origin``) with every limit of the twisted.web side.
"""

from __future__ import annotations

from typing import Any, Tuple

from ..common import AdapterContext
from .factory import WebSocketFactory

__all__ = ["websocket_factory", "upgrade_request"]


def websocket_factory(context: AdapterContext) -> WebSocketFactory:
    """The app's WebSocket factory for upgraded connections (made on first use)."""
    factory = context.shared.get("websocket_factory")
    if factory is None:
        factory = context.shared["websocket_factory"] = WebSocketFactory(context)
    return factory  # type: ignore[no-any-return]


def upgrade_request(request: Any, context: AdapterContext) -> Tuple[Any, bytes]:
    """An upgrade handler (``adapters.llhttp.register_upgrade``): the protocol
    that takes the connection over, and the handshake bytes it must read first."""
    raw = request.raw
    head = b"%s %s %s\r\n" % (raw.method, raw.uri, raw.clientproto or b"HTTP/1.1")
    head += b"".join(b"%s: %s\r\n" % (name, value) for name, value in raw.header_list)
    proto = websocket_factory(context).buildProtocol(raw.channel.peer)
    return proto, head + b"\r\n"
