"""Server-to-client WebSocket text frames, made once per push.

A server frame is never masked (RFC 6455 §5.1) and we send no compressed or
fragmented messages, so a text message is a fixed header plus the payload.
Building it here lets the hub encode a push once per format for every
WebSocket client (the ``ws-json``/``ws-xml`` push formats) instead of once
per client through autobahn's ``sendMessage``, whose ``maxMessagePayloadSize``
check would also cap what the *server* sends at the *client's* limit.
"""

from __future__ import annotations

from typing import Any, Optional

from ...core.codec import data_to_xml, dumps_json_line
from ...push.target import encode_push, register_push_format

__all__ = ["text_frame", "close_frame", "WS_JSON", "WS_XML"]

WS_JSON = "ws-json"
WS_XML = "ws-xml"


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented text frame holding ``payload`` (UTF-8)."""
    n = len(payload)
    if n < 126:
        return b"\x81" + bytes((n,)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def close_frame(code: int) -> bytes:
    """A close frame with ``code`` and no reason."""
    return b"\x88\x02" + code.to_bytes(2, "big")


def _push_json(message: Any, topic: Optional[str]) -> bytes:
    return text_frame(encode_push(message, "json", topic))


def _push_xml(message: Any, topic: Optional[str]) -> bytes:
    return text_frame(encode_push(message, "xml", topic))


def shutdown_message(data_type: str) -> bytes:
    """The ``{"type": "shutdown"}`` goodbye (``<shutdown/>`` for XML clients), framed."""
    return text_frame(data_to_xml("shutdown", None) if data_type == "xml"
                      else dumps_json_line({"type": "shutdown"}))


register_push_format(WS_JSON, _push_json)
register_push_format(WS_XML, _push_xml)
