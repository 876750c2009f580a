"""``Server``: one application object serving HTTP and TCP.

The server owns its config, router, middleware, pipeline, background-job
runner and the registry of long-lived TCP connections. It runs three ways,
all on the same service tree (``make_service``):

- ``server.run()`` — start listening and block in the reactor (the seed);
- ``server.listen()`` — start inside a running reactor, get a Deferred of
  the bound ports (tests, embedding);
- ``twistd pyliteflux --app module:server`` — ``make_service`` under twistd.
"""

from __future__ import annotations

import concurrent.futures
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import threadable

from .background import JobRunner
from .config import Config
from .http_resource import HTTPResource, Site
from .middleware import MiddlewareManager
from .pipeline import Pipeline
from .routing import Route, Router
from .tcp_protocol import LineFactory, LineProtocol, encode_push

__all__ = ["Server", "ConnectionRegistry", "Listening", "ServerService", "importing_app"]

_log = Logger(namespace="pyliteflux.server")
_SIDES = ("both", "http", "tcp")


_run_suppressed = 0


@contextmanager
def importing_app() -> Iterator[None]:
    """While active, ``Server.run()`` returns at once instead of blocking.

    ``twistd pyliteflux --app`` and the testing helpers import a user's module
    inside this, so a module that ends in ``server.run()`` (as the seed's
    examples do) can also be served by twistd or driven by tests.
    """
    global _run_suppressed
    _run_suppressed += 1
    try:
        yield
    finally:
        _run_suppressed -= 1


def _endpoint_string(host: str, port: int) -> str:
    return f"tcp:{port}:interface={host.replace(':', chr(92) + ':')}"


class ConnectionRegistry(Dict[str, LineProtocol]):
    """Live mapping ``client_id -> connection`` of keep-alive TCP clients."""

    def register(self, client_id: str, conn: LineProtocol) -> None:
        self[client_id] = conn

    def unregister(self, client_id: str, conn: LineProtocol) -> None:
        if self.get(client_id) is conn:
            del self[client_id]


class Listening:
    """Where a started server listens: the Twisted listening ports per side."""

    def __init__(self) -> None:
        self.ports: Dict[str, List[Any]] = {"http": [], "tcp": []}

    def _port(self, side: str) -> Optional[int]:
        for port in self.ports[side]:
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

    def __repr__(self) -> str:
        return f"Listening(http={self.http_port}, tcp={self.tcp_port})"


class _ListenerService(Service):
    """Listens on one endpoint while running; keeps the port for ``Listening``."""

    def __init__(self, side: str, endpoint_desc: str, factory: Any, server: "Server") -> None:
        self.side = side
        self.endpoint_desc = endpoint_desc
        self.factory = factory
        self.server = server
        self.port: Any = None
        self.listening: Deferred[Any] = Deferred()
        self.setName(f"{side}:{endpoint_desc}")

    def startService(self) -> None:
        super().startService()
        endpoint = serverFromString(self.server.reactor, self.endpoint_desc)
        d = endpoint.listen(self.factory)

        def listening(port: Any) -> Any:
            self.port = port
            if self.server.config.info:
                _log.info("{side} listening on {where}", side=self.side.upper(),
                          where=_describe(port))
            return port

        d.addCallback(listening)
        d.chainDeferred(self.listening)
        self.listening.addErrback(self._failed)

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


def _describe(port: Any) -> str:
    host = port.getHost()
    if hasattr(host, "port"):
        return f"{host.host}:{host.port}"
    return str(getattr(host, "name", host))


class ServerService(MultiService):
    """The service tree of a server: its listeners, plus graceful shutdown.

    Stopping it stops accepting, tells each TCP client it is shutting down,
    and drains background jobs for up to ``config.shutdown_timeout`` seconds.
    """

    def __init__(self, server: "Server", listeners: List[_ListenerService]) -> None:
        super().__init__()
        self.server = server
        self.listeners = listeners
        for listener in listeners:
            listener.setServiceParent(self)

    def startService(self) -> None:
        self.server.jobs.start()
        super().startService()

    def listening(self) -> Deferred[Listening]:
        """Fires with the bound ports once every listener is up."""
        result = Listening()

        def collect(_: Any) -> Listening:
            for listener in self.listeners:
                result.ports[listener.side].append(listener.port)
            return result

        d = gatherResults([listener.listening for listener in self.listeners], consumeErrors=True)
        d.addCallback(collect)
        d.addErrback(lambda f: f.value.subFailure if hasattr(f.value, "subFailure") else f)
        return d

    def stopService(self) -> Deferred[Any]:
        server = self.server
        d = super().stopService() or succeed(None)

        def drain(_: Any) -> Deferred[Any]:
            server.close_tcp_connections()
            return server.jobs.stop(server.config.shutdown_timeout)

        d.addBoth(drain)
        return d


class Server:
    """A pyliteflux application: routes, middleware, config, and the listeners.

    ``router`` defaults to the process-wide default (what ``Route.register``
    writes to) as it is when the server is made; ``reactor`` defaults to the
    global reactor, resolved lazily.
    """

    def __init__(
        self,
        router: Optional[Router] = None,
        reactor: Any = None,
        config: Optional[Config] = None,
        thread_pool: Any = None,
        **settings: Any,
    ) -> None:
        self.config = config if config is not None else Config()
        if settings:
            self.config.update(**settings)
        self.router = router if router is not None else Route.default
        self._reactor = reactor
        self.middleware_manager = MiddlewareManager()
        self.pipeline = Pipeline(self.router, self.middleware_manager, lambda: self.config.debug)
        self.jobs = JobRunner(reactor, self.config.bg_threads, self.config.bg_max_queued,
                              pool=thread_pool)
        self.connections = ConnectionRegistry()
        self._resource: Optional[HTTPResource] = None
        self._service: Optional[ServerService] = None
        self._running_reactor = False

    # -- pieces ----------------------------------------------------------------------

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
            self.jobs._reactor = reactor
        return self._reactor

    @property
    def _active_connections(self) -> ConnectionRegistry:
        """The seed's name for ``connections``."""
        return self.connections

    @property
    def resource(self) -> HTTPResource:
        """The ``twisted.web`` resource serving this app (mount it anywhere)."""
        if self._resource is None:
            self._resource = HTTPResource(self)
        return self._resource

    def site(self) -> Site:
        """A ``twisted.web`` Site for the HTTP side."""
        timeout = self.config.http_idle_timeout or None
        return Site(self.resource, timeout=timeout)

    def tcp_factory(self) -> LineFactory:
        """A protocol factory for the TCP side."""
        return LineFactory(self)

    def add_middleware(self, middleware: Any, protocol: str = "both") -> Any:
        """Shortcut for ``server.middleware_manager.add_middleware``."""
        return self.middleware_manager.add_middleware(middleware, protocol)

    def route(self, path: str, method: Any = "GET", protocol: str = "http") -> Any:
        """Register on this server's router: ``@server.route("/x")``."""
        return self.router.register(path, method=method, protocol=protocol)

    # -- service tree ----------------------------------------------------------------------

    def endpoints(self, protocol: str = "both") -> Dict[str, List[str]]:
        """The endpoint strings each side will listen on, from the config."""
        if protocol not in _SIDES:
            raise ValueError(f"protocol must be one of {_SIDES}, got {protocol!r}")
        c = self.config
        out: Dict[str, List[str]] = {"http": [], "tcp": []}
        if protocol in ("both", "http"):
            out["http"].append(c.http_endpoint or _endpoint_string(c.http_host, c.http_port))
        if protocol in ("both", "tcp"):
            out["tcp"].append(c.tcp_endpoint or _endpoint_string(c.tcp_host, c.tcp_port))
        return out

    def make_service(self, protocol: str = "both",
                     endpoints: Optional[Dict[str, List[str]]] = None) -> ServerService:
        """The ``twisted.application`` service tree serving this app."""
        endpoints = endpoints if endpoints is not None else self.endpoints(protocol)
        listeners = []
        for desc in endpoints.get("http", []):
            listeners.append(_ListenerService("http", desc, self.site(), self))
        for desc in endpoints.get("tcp", []):
            listeners.append(_ListenerService("tcp", desc, self.tcp_factory(), self))
        service = ServerService(self, listeners)
        self._service = service
        return service

    def listen(self, protocol: str = "both") -> Deferred[Listening]:
        """Start listening inside a running reactor (does not block).

        Fires with a ``Listening`` (``.http_port`` / ``.tcp_port``); errbacks
        (and stops what did start) if an endpoint cannot listen.
        """
        service = self.make_service(protocol)
        service.startService()
        d = service.listening()

        def failed(failure: Any) -> Any:
            return service.stopService().addBoth(lambda _: failure)

        d.addErrback(failed)
        return d

    def run(self, protocol: str = "both") -> None:
        """Start HTTP and/or TCP and block in the reactor until stopped.

        SIGINT/SIGTERM (or ``stop()``) shut down gracefully. Raises the
        listening error if a port cannot be bound.
        """
        from .log import start_console_logging

        if _run_suppressed:
            return
        reactor = self.reactor
        if self.config.info:
            start_console_logging()
        errors: List[Any] = []

        def failed(failure: Any) -> None:
            errors.append(failure)
            if reactor.running:
                reactor.stop()

        def start() -> None:
            self.listen(protocol).addErrback(failed)

        reactor.callWhenRunning(start)
        reactor.addSystemEventTrigger("before", "shutdown", self._stop_service)
        self._running_reactor = True
        try:
            reactor.run()
        finally:
            self._running_reactor = False
        if errors:
            errors[0].raiseException()

    def _stop_service(self) -> Deferred[Any]:
        service, self._service = self._service, None
        if service is None or not service.running:
            return succeed(None)
        if self.config.info:
            _log.info("shutting down")
        return service.stopService()

    def stop(self) -> Deferred[Any]:
        """Stop listening, finish in-flight work, and stop the reactor if
        ``run()`` started it. Fires when the server has stopped."""
        if self._running_reactor and self.reactor.running:
            self.reactor.callFromThread(self.reactor.stop)
            return succeed(None)
        return self._stop_service()

    # -- push ---------------------------------------------------------------------------

    def push_message(self, message: Any, client_id: Optional[str] = None) -> Any:
        """Send ``message`` to one keep-alive TCP client, or to all of them.

        On the reactor thread it returns how many clients it reached (0 for
        an unknown ``client_id``, which is also logged). From any other
        thread (a background job) it is handed to the reactor and returns a
        ``concurrent.futures.Future`` of that count.
        """
        if threadable.ioThread is None or threadable.isInIOThread():
            return self._push(message, client_id)
        future: "concurrent.futures.Future[int]" = concurrent.futures.Future()

        def push() -> None:
            try:
                future.set_result(self._push(message, client_id))
            except BaseException as exc:  # report to the caller, not the reactor
                future.set_exception(exc)

        self.reactor.callFromThread(push)
        return future

    def _push(self, message: Any, client_id: Optional[str]) -> int:
        if client_id is None:
            targets = list(self.connections.values())
        else:
            conn = self.connections.get(client_id)
            if conn is None:
                _log.warn("push to unknown TCP client {client_id!r}", client_id=client_id)
                return 0
            targets = [conn]
        lines: Dict[str, bytes] = {}
        reached = 0
        for conn in targets:
            data_type = "xml" if conn.data_type == "xml" else "json"
            line = lines.get(data_type)
            if line is None:
                line = lines[data_type] = encode_push(message, data_type)
            if conn.push_line(line):
                reached += 1
        return reached

    def close_tcp_connections(self) -> None:
        """Send each keep-alive TCP client a shutdown line and close it."""
        for conn in list(self.connections.values()):
            conn.send_shutdown()
