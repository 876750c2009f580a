"""Protocol upgrades on the llhttp engine: a small registry the WebSocket
adapter (or any other) plugs into.

When a request asks to upgrade (``Connection: upgrade`` + ``Upgrade: X``)
and ``X`` (lower-cased) is registered, the engine calls the handler with
our ``HTTPRequest`` (``request.raw`` is the ``RawRequest``) and the
adapter context once every earlier response on the connection is out.
The handler returns a Twisted protocol to take the connection over — it
then gets ``makeConnection(transport)``, the bytes that followed the
request (``dataReceived``) and everything after; it writes the ``101``
itself — or ``(protocol, first_bytes)`` to have ``first_bytes`` delivered
before those (the WebSocket adapter replays the handshake request), or None
to decline, and the request is served as plain HTTP.
A handler registered with ``path_key`` only sees requests whose path is
that config key's value (``websocket_path`` for WebSocket).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

__all__ = ["UpgradeHandler", "register_upgrade", "unregister_upgrade", "find_upgrade",
           "has_upgrade"]

#: (request: HTTPRequest, context: AdapterContext) -> a protocol, or None to decline
UpgradeHandler = Callable[[Any, Any], Any]

_HANDLERS: Dict[bytes, Tuple[UpgradeHandler, Optional[str]]] = {}


def register_upgrade(token: str, handler: UpgradeHandler, path_key: Optional[str] = None) -> None:
    """Serve ``Upgrade: token`` requests with ``handler`` (e.g. ``"websocket"``,
    ``path_key="websocket_path"``). Registering a token again replaces it."""
    _HANDLERS[token.lower().encode("ascii")] = (handler, path_key)


def has_upgrade(token: str) -> bool:
    """Whether a handler is registered for ``Upgrade: token``."""
    return token.lower().encode("ascii") in _HANDLERS


def unregister_upgrade(token: str) -> None:
    _HANDLERS.pop(token.lower().encode("ascii"), None)


def find_upgrade(raw: Any, config: Any) -> Optional[UpgradeHandler]:
    """The handler for this upgrade request, if one is registered and its path matches."""
    token = raw.getHeader(b"upgrade")
    if token is None:
        return None
    entry = _HANDLERS.get(token.strip().lower())
    if entry is None:
        return None
    handler, path_key = entry
    if path_key is not None:
        wanted = getattr(config, path_key, None)
        if wanted is None or raw.path.decode("latin-1") != wanted:
            return None
    return handler
