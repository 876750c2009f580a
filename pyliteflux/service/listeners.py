"""Listening on Twisted endpoint strings, one service per endpoint."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

__all__ = ["ListenerService", "Listening", "endpoint_string", "describe_port"]

_log = Logger(namespace="pyliteflux.server")


def endpoint_string(host: str, port: int) -> str:
    """``tcp:PORT:interface=HOST`` (IPv6 colons escaped)."""
    return f"tcp:{port}:interface={host.replace(':', chr(92) + ':')}"


def describe_port(port: Any) -> str:
    host = port.getHost()
    if hasattr(host, "port"):
        return f"{host.host}:{host.port}"
    return str(getattr(host, "name", host))


class Listening:
    """Where a started server listens: the Twisted listening ports per side."""

    def __init__(self) -> None:
        self.ports: Dict[str, List[Any]] = {"http": [], "tcp": []}

    def _port(self, side: str) -> Optional[int]:
        for port in self.ports.get(side, ()):
            return getattr(port.getHost(), "port", None)
        return None

    @property
    def http_port(self) -> Optional[int]:
        """The first HTTP port number (useful when configured as 0)."""
        return self._port("http")

    @property
    def tcp_port(self) -> Optional[int]:
        """The first TCP port number (useful when configured as 0)."""
        return self._port("tcp")

    @property
    def metrics_port(self) -> Optional[int]:
        """The metrics endpoint's port number (``metrics_endpoint``), if any."""
        return self._port("metrics")

    def __repr__(self) -> str:
        return f"Listening(http={self.http_port}, tcp={self.tcp_port})"


class ListenerService(Service):
    """Listens on one endpoint while running; keeps the port for ``Listening``."""

    def __init__(self, side: str, endpoint_desc: str, factory: Any,
                 reactor: Callable[[], Any], info: Callable[[], bool]) -> None:
        self.side = side
        self.endpoint_desc = endpoint_desc
        self.factory = factory
        self._reactor = reactor
        self._info = info
        self.port: Any = None
        self.listening: Deferred[Any] = Deferred()
        self.setName(f"{side}:{endpoint_desc}")

    #: how the log line says it (``AdoptedListenerService``: "accepting on")
    listening_as = "listening on"

    def startService(self) -> None:
        super().startService()
        if self.listening.called:  # restarted: a fresh Deferred for this run
            self.listening = Deferred()
        try:
            d = self.listen()
        except Exception:
            d = fail()

        def listening(port: Any) -> Any:
            self.port = port
            if self._info():
                _log.info("{side} {how} {where}", side=self.side.upper(),
                          how=self.listening_as, where=describe_port(port))
            return port

        d.addCallback(listening)
        d.chainDeferred(self.listening)
        self.listening.addErrback(self._failed)

    def listen(self) -> Deferred[Any]:
        """Fires with the listening port."""
        return serverFromString(self._reactor(), self.endpoint_desc).listen(self.factory)

    def _failed(self, failure: Any) -> Any:
        _log.error("{side} cannot listen on {where}: {why}", side=self.side.upper(),
                   where=self.endpoint_desc, why=failure.getErrorMessage())
        return failure

    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None
