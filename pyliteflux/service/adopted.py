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
from twisted.internet import tcp, unix
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from .. import twisted_internals as ti
from . import balance
from .listeners import ListenerService

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

    def logPrefix(self) -> str:
        return "Shared socket (for the workers)"


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


class _FairAccepts:
    """Accept at most ``ACCEPT_BATCH`` connections per wakeup, and let one go
    while this worker is ahead of the others (``service.balance``).

    Every worker waits on the same listening socket and the kernel wakes
    them all; Twisted's port then accepts as many as are queued (up to 100,
    growing), so the first worker awake takes a whole burst (64 new
    connections split 63/1). A small batch hands the rest to the others.
    """

    numberAccepts: int
    reactor: Any
    _deferred_once = False
    _retry: Any = None

    def doRead(self) -> Any:
        ledger = balance.current()
        if ledger is not None and not self._deferred_once and ledger.ahead():
            self._deferred_once = True  # let the others take this one
            self.stopReading()  # type: ignore[attr-defined]
            self._retry = self.reactor.callLater(balance.DEFER, self._read_again)
            return None
        self._deferred_once = False
        if self.numberAccepts > ACCEPT_BATCH:
            self.numberAccepts = ACCEPT_BATCH
        return super().doRead()  # type: ignore[misc]

    def _read_again(self) -> None:
        self._retry = None
        if self.connected:  # type: ignore[attr-defined]
            self.startReading()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Any) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        super().connectionLost(reason)  # type: ignore[misc]


def _counted(server_class: Any) -> Any:
    """A connection class that tells the ledger when it opens and closes."""

    class Counted(server_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._ledger = ledger = balance.current()
            if ledger is not None:
                ledger.accepted()

        def connectionLost(self, reason: Any) -> None:
            super().connectionLost(reason)
            ledger, self._ledger = self._ledger, None
            if ledger is not None:
                ledger.closed()

    Counted.__name__ = server_class.__name__
    return Counted


#: connections one worker accepts per wakeup of its shared listening socket
ACCEPT_BATCH = 1


class SharedTCPPort(_FairAccepts, tcp.Port):
    """A worker's port on an inherited TCP socket."""

    transport = _counted(tcp.Server)


class SharedUNIXPort(_FairAccepts, unix.Port):
    """A worker's port on an inherited UNIX socket."""

    transport = _counted(unix.Server)


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
        try:
            if ti.ASSUMPTIONS["Port._fromListeningDescriptor"]():
                port = self._reactor.adoptStreamPort(self._fd, self._family, factory)
            else:
                cls = SharedUNIXPort if self._family == socket.AF_UNIX else SharedTCPPort
                port = ti.adopt_listening_port(cls, self._reactor, self._fd, self._family,
                                               factory)
        finally:
            os.close(self._fd)  # the port works on a duplicate of it
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


class AdoptedListenerService(ListenerService):
    """A worker's listener: like ``ListenerService``, on an inherited socket.

    ``fd_family`` is the descriptor and its family name the supervisor gave
    this worker for ``endpoint_desc``. The descriptor is adopted once; when
    the service stops (graceful shutdown step 1) the worker stops accepting,
    while the other workers go on (a UNIX socket is only no longer read:
    closing it through Twisted would unlink its path for everyone).
    """

    listening_as = "accepting on"

    def __init__(self, side: str, endpoint_desc: str, fd_family: Tuple[int, str],
                 factory: Any, reactor: Callable[[], Any], info: Callable[[], bool]) -> None:
        super().__init__(side, endpoint_desc, factory, reactor, info)
        self.fd, self.family = fd_family
        self._adopted = False

    def listen(self) -> Deferred[Any]:
        if self._adopted:  # the descriptor is adopted (and closed) once per process
            raise RuntimeError(f"{self.name}: already adopted")
        self._adopted = True
        proxy = AdoptingReactor(self._reactor(), self.fd, self.family)
        return serverFromString(proxy, self.endpoint_desc).listen(self.factory)

    def _failed(self, failure: Any) -> Any:
        _log.error("{side} cannot adopt the socket of {where}: {why}", side=self.side.upper(),
                   where=self.endpoint_desc, why=failure.getErrorMessage())
        return failure

    def stopService(self) -> Any:
        if self.family != "UNIX":
            return super().stopService()
        Service.stopService(self)
        if self.port is not None:
            port, self.port = self.port, None
            # closing an adopted UNIX port would unlink the path the other
            # workers still accept on: stop accepting, the socket closes at exit
            port.stopReading()
        return None
