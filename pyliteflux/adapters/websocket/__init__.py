"""The WebSocket adapter (SPEC §14): the TCP line protocol in text messages.

    http.site.Site (websocket_path) -> factory.WebSocketUpgradeResource
        -> factory.WebSocketFactory.take_over -> protocol.WebSocketProtocol
        -> commands.CommandSession -> lines.parse_line -> core.pipeline -> frames.text_frame (write)

``WebSocketFactory.take_over(transport, handshake, on_close)`` is the entry
point for any HTTP engine that wants to hand an upgrade request over.
"""

from .factory import WebSocketFactory, WebSocketUpgradeResource, is_upgrade
from .frames import WS_JSON, WS_XML, text_frame
from .protocol import WebSocketProtocol, origin_allowed

__all__ = ["WebSocketFactory", "WebSocketUpgradeResource", "WebSocketProtocol", "is_upgrade",
           "origin_allowed", "text_frame", "WS_JSON", "WS_XML"]
