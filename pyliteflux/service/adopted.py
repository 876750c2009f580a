"""Listening sockets opened once by the supervisor and shared by its workers.

The supervisor opens each listener from its endpoint string as a plain
process would (``serverFromString(reactor, desc).listen``), then stops
reading from it: it never accepts, the socket only waits for its workers
(``open_shared``). Each worker receives the descriptor through
``spawnProcess(childFDs=...)`` and adopts it with
``reactor.adoptStreamPort`` (``AdoptedListenerService``); the kernel hands
each new connection to one of the workers accepting on it.

For ``ssl:`` the worker layers TLS over the adopted port itself, with the
certificate options of the same endpoint string: the string is parsed
against an ``AdoptingReactor`` whose ``listenSSL`` receives the context
factory Twisted built from it, so no private attribute is read.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, Dict, Tuple

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from .listeners import describe_port

__all__ = ["FAMILIES", "family_of", "open_shared", "AdoptingReactor", "AdoptedListenerService"]

_log = Logger(namespace="pyliteflux.server")

#: address family names as passed to workers
FAMILIES: Dict[str, int] = {"INET": socket.AF_INET, "INET6": socket.AF_INET6,
                            "UNIX": socket.AF_UNIX}


def family_of(port: Any) -> str:
    """The address family name (a key of ``FAMILIES``) of a listening port."""
    host = port.getHost()
    kind = type(host).__name__
    if kind == "IPv6Address":
        return "INET6"
    if kind == "UNIXAddress":
        return "UNIX"
    return "INET"


class _NoAccept(Factory):
    """The factory of a port that never accepts (the supervisor's)."""

    noisy = False
    protocol = Protocol


def open_shared(reactor: Any, desc: str) -> Deferred[Any]:
    """Listen on ``desc`` without accepting: fires with the port, whose
    ``fileno()`` the workers share (stop it with ``stopListening``)."""
    try:
        d = serverFromString(reactor, desc).listen(_NoAccept())
    except Exception:
        return fail()

    def idle(port: Any) -> Any:
        port.stopReading()  # the listening socket stays open; workers accept on it
        return port

    return d.addCallback(idle)


class AdoptingReactor:
    """What ``serverFromString`` listens with in a worker: every ``listen*``
    adopts the inherited descriptor ``fd`` instead of binding a new socket.

    Only the listening calls are answered; ``tcp:``, ``tcp6:``, ``unix:``
    and ``ssl:`` endpoint strings use nothing else of their reactor.
    """

    def __init__(self, reactor: Any, fd: int, family: str) -> None:
        self._reactor = reactor
        self._fd = fd
        self._family = FAMILIES[family]

    def _adopt(self, factory: Any) -> Any:
        os.set_blocking(self._fd, False)  # adoptStreamPort wants a non-blocking socket
        port = self._reactor.adoptStreamPort(self._fd, self._family, factory)
        os.close(self._fd)  # adoptStreamPort works on a duplicate of it
        return port

    def listenTCP(self, port: int, factory: Any, backlog: int = 50,
                  interface: str = "") -> Any:
        return self._adopt(factory)

    def listenUNIX(self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666,
                   wantPID: int = 0) -> Any:
        return self._adopt(factory)

    def listenSSL(self, port: int, factory: Any, contextFactory: Any, backlog: int = 50,
                  interface: str = "") -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self._adopt(TLSMemoryBIOFactory(contextFactory, False, factory))


class AdoptedListenerService(Service):
    """A worker's listener: like ``ListenerService``, on an inherited socket.

    ``fd_family`` is the descriptor and its family name the supervisor gave
    this worker for ``endpoint_desc``. The descriptor is adopted once; when
    the service stops (graceful shutdown step 1) the worker stops accepting,
    while the other workers go on (a UNIX socket is only no longer read:
    closing it through Twisted would unlink its path for everyone).
    """

    def __init__(self, side: str, endpoint_desc: str, fd_family: Tuple[int, str],
                 factory: Any, reactor: Callable[[], Any], info: Callable[[], bool]) -> None:
        self.side = side
        self.endpoint_desc = endpoint_desc
        self.fd, self.family = fd_family
        self.factory = factory
        self._reactor = reactor
        self._info = info
        self.port: Any = None
        self.listening: Deferred[Any] = Deferred()
        self._adopted = False
        self.setName(f"{side}:{endpoint_desc}")

    def startService(self) -> None:
        super().startService()
        if self._adopted:  # the descriptor is adopted (and closed) once per process
            self.listening = fail(RuntimeError(f"{self.name}: already adopted"))
            self.listening.addErrback(self._failed)
            return
        self._adopted = True
        proxy = AdoptingReactor(self._reactor(), self.fd, self.family)
        try:
            d = serverFromString(proxy, self.endpoint_desc).listen(self.factory)
        except Exception:
            d = fail()

        def listening(port: Any) -> Any:
            self.port = port
            if self._info():
                _log.info("{side} accepting on {where} (shared)", side=self.side.upper(),
                          where=describe_port(port))
            return port

        d.addCallback(listening)
        d.chainDeferred(self.listening)
        self.listening.addErrback(self._failed)

    def _failed(self, failure: Any) -> Any:
        _log.error("{side} cannot adopt the socket of {where}: {why}", side=self.side.upper(),
                   where=self.endpoint_desc, why=failure.getErrorMessage())
        return failure

    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            if self.family == "UNIX":
                # closing an adopted UNIX port would unlink the path the other
                # workers still accept on: stop accepting, the socket closes at exit
                port.stopReading()
                return None
            return port.stopListening()
        return None
