"""A real server on free loopback ports, and apps imported for tests."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from ..app import Server
from ..service import Listening
from ..service.loading import load_app as _load_app

__all__ = ["RunningServer", "serve", "load_app"]


class RunningServer:
    """A server listening on loopback: ``http_port``, ``tcp_port``, ``url(path)``, ``stop()``."""

    def __init__(self, server: Server, listening: Listening) -> None:
        self.server = server
        self.listening = listening
        self.http_port = listening.http_port
        self.tcp_port = listening.tcp_port

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def stop(self) -> Deferred[Any]:
        """Stop listening, close connections, drain jobs; fires when done."""
        return self.server._stop_service()


def serve(server: Server, protocol: str = "both") -> Deferred[RunningServer]:
    """Listen on 127.0.0.1 with free ports (whatever the config says)."""
    server.config.update(http_host="127.0.0.1", http_port=0, tcp_host="127.0.0.1", tcp_port=0,
                         http_endpoint=None, tcp_endpoint=None)
    return server.listen(protocol).addCallback(lambda listening: RunningServer(server, listening))


def load_app(spec: str, fresh: bool = True) -> Server:
    """Import ``"package.module:attribute"`` (``attribute`` defaults to
    ``server``) and return its ``Server``.

    The import runs with ``Server.run()`` disabled and, with ``fresh``, with
    a fresh default router, so the module's ``Route.register`` calls go to
    its own server and two apps loaded in one test process never share
    routes. ``attribute`` may also name a function returning a ``Server``.
    A module that cannot be loaded raises ``service.loading.AppLoadError``.
    """
    return _load_app(spec, Server, default_attr="server", fresh=fresh)  # type: ignore[no-any-return]
