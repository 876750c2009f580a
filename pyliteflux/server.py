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
from typing import Any, Dict, Iterator, List, Optional, Set

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import threadable
from twisted.python.failure import Failure

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

    def __init__(self, side: str, endpoint_desc: str, factory: Any, server: Server) -> None:
        self.side = side
        self.endpoint_desc = endpoint_desc
        self.factory = factory
        self.server = server
        self.port: Any = None
        self.listening: Deferred[Any] = Deferred()
        self.setName(f"{side}:{endpoint_desc}")

    def startService(self) -> None:
        super().startService()
        if self.listening.called:  # restarted: a fresh Deferred for this run
            self.listening = Deferred()
        try:
            endpoint = serverFromString(self.server.reactor, self.endpoint_desc)
            d = endpoint.listen(self.factory)
        except Exception:
            d = fail()

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


class _Connections:
    """The open connections of one side, tracked by wrapping ``buildProtocol``.

    Twisted's ``Site`` and our ``LineFactory`` do not keep a list of their
    connections; graceful shutdown needs one (which HTTP channels are idle,
    which have a request in flight, which TCP clients to tell goodbye).
    Wrapping the factory's ``buildProtocol`` (rather than the transport, as
    ``WrappingFactory`` would) leaves the protocol's transport untouched, so
    HTTP flow control and TLS behave exactly as without tracking.
    """

    def __init__(self) -> None:
        self.open: Set[Any] = set()

    def watch(self, factory: Any) -> Any:
        build = factory.buildProtocol

        def buildProtocol(addr: Any) -> Any:
            proto = build(addr)
            if proto is not None:
                self._add(proto)
            return proto

        factory.buildProtocol = buildProtocol
        return factory

    def _add(self, proto: Any) -> None:
        self.open.add(proto)
        lost = proto.connectionLost

        def connectionLost(reason: Any) -> Any:
            self.open.discard(proto)
            return lost(reason)

        proto.connectionLost = connectionLost

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.open))

    def __len__(self) -> int:
        return len(self.open)


def _http_channel(proto: Any) -> Any:
    """The HTTP/1 channel behind Twisted's protocol-switching wrapper."""
    return getattr(proto, "_channel", proto)


def _http_requests(proto: Any) -> List[Any]:
    return list(getattr(_http_channel(proto), "requests", None) or ())


def _tcp_pending(proto: Any) -> int:
    return int(getattr(proto, "pending_count", 0))


def _close_http(proto: Any) -> None:
    channel = _http_channel(proto)
    close = getattr(channel, "loseConnection", None)
    if close is None and proto.transport is not None:
        close = proto.transport.loseConnection
    if close is not None:
        close()


def _abort(proto: Any) -> None:
    transport = getattr(_http_channel(proto), "transport", None) or proto.transport
    if transport is None:
        return
    abort = getattr(transport, "abortConnection", None) or transport.loseConnection
    abort()


class ServerService(MultiService):
    """The service tree of a server: its listeners, plus graceful shutdown.

    Stopping it, within ``config.shutdown_timeout`` seconds in total:

    1. stops accepting (every listener stops listening);
    2. closes idle keep-alive HTTP connections at once and lets in-flight
       HTTP requests and TCP commands finish (their connections close after
       the response: ``Connection: close``);
    3. drains background jobs (SPEC §8) — before the TCP clients are told
       goodbye, so a job's ``push_message`` still reaches its client;
    4. sends each TCP client a ``{"type": "shutdown"}`` line and closes it
       cleanly, waiting for the close;
    5. at the deadline, logs whatever was abandoned (requests, commands,
       jobs, connections) and aborts the connections still open.

    The last ``min(0.5, timeout / 4)`` seconds of the budget are kept for
    step 4, so even a stuck request still lets the TCP clients hear about the
    shutdown. The Deferred fires when all of it is done (never errbacks).
    """

    #: seconds between checks for in-flight work while draining
    poll_interval = 0.05

    def __init__(self, server: Server, listeners: List[_ListenerService]) -> None:
        super().__init__()
        self.server = server
        self.listeners = listeners
        self.http_connections = _Connections()
        self.tcp_connections = _Connections()
        #: True when stopping this service should stop the reactor too
        #: (``server.run()``, ``twistd``, ``python -m pyliteflux``).
        self.owns_reactor = False
        self._stopping: Optional[Deferred[Any]] = None
        self._stopped = False
        self._stopped_waiters: List[Deferred[Any]] = []
        watched: Set[int] = set()
        for listener in listeners:
            if id(listener.factory) not in watched:  # one factory may serve many endpoints
                watched.add(id(listener.factory))
                (self.http_connections if listener.side == "http"
                 else self.tcp_connections).watch(listener.factory)
            listener.setServiceParent(self)

    def startService(self) -> None:
        jobs, config = self.server.jobs, self.server.config
        if jobs._pool is None:  # not started yet: take the config as it is now
            jobs.threads = config.bg_threads
            jobs.max_queued = config.bg_max_queued
        self._stopping = None
        self._stopped = False
        jobs.start()
        super().startService()

    def listening(self) -> Deferred[Listening]:
        """Fires with the bound ports once every listener is up."""
        result = Listening()

        def collect(_: Any) -> Listening:
            for listener in self.listeners:
                result.ports[listener.side].append(listener.port)
            return result

        d: Deferred[Any] = gatherResults([listener.listening for listener in self.listeners],
                                         consumeErrors=True)
        d.addCallback(collect)
        d.addErrback(lambda f: f.value.subFailure if hasattr(f.value, "subFailure") else f)
        return d

    def when_stopped(self) -> Deferred[Any]:
        """A Deferred that fires when the current (or next) stop has finished."""
        d: Deferred[Any] = Deferred()
        if self._stopped:
            d.callback(None)
        else:
            self._stopped_waiters.append(d)
        return d

    def stopService(self) -> Deferred[Any]:
        if self._stopping is not None:  # already stopping: share the same shutdown
            return self.when_stopped()
        server = self.server
        reactor = server.reactor
        timeout = server.config.shutdown_timeout
        started = reactor.seconds()
        deadline = started + timeout
        drain_until = deadline - min(0.5, timeout / 4)
        report: Dict[str, Any] = {}

        d = super().stopService() or succeed(None)  # 1. stop accepting
        d.addErrback(lambda f: _log.failure("shutdown: stopping a listener failed", f))
        if server.config.info:
            d.addCallback(lambda _: _log.info(
                "shutdown: stopped accepting; draining for up to {timeout}s", timeout=timeout))
        d.addCallback(lambda _: self._drain_requests(drain_until))  # 2.

        def drain_jobs(leftover: Any) -> Deferred[Any]:  # 3.
            report["requests"] = leftover
            return server.jobs.stop(max(0.0, drain_until - reactor.seconds()))

        d.addCallback(drain_jobs)

        def close_connections(abandoned_jobs: Any) -> Deferred[Any]:  # 4.
            report["jobs"] = abandoned_jobs
            server.close_tcp_connections()
            return self._close_all(deadline)

        d.addCallback(close_connections)

        def done(result: Any) -> None:  # 5.
            if isinstance(result, Failure):
                _log.failure("shutdown failed", result)
            elapsed = reactor.seconds() - started
            http_reqs, tcp_cmds = report.get("requests") or ([], [])
            aborted = result if isinstance(result, list) else []
            if http_reqs or tcp_cmds or report.get("jobs") or aborted:
                _log.warn(
                    "shutdown: gave up after {elapsed:.2f}s (shutdown_timeout={timeout}s): abandoned "
                    "{n_http} HTTP request(s) {http}, {n_tcp} TCP command(s) {tcp}, "
                    "{n_jobs} background job(s), aborted {n_conn} connection(s)",
                    timeout=timeout, elapsed=elapsed, n_http=len(http_reqs), http=http_reqs,
                    n_tcp=len(tcp_cmds), tcp=tcp_cmds, n_jobs=len(report.get("jobs") or ()),
                    n_conn=len(aborted))
            elif server.config.info:
                _log.info("shutdown complete in {elapsed:.2f}s", elapsed=elapsed)
            self._stopped = True
            waiters, self._stopped_waiters = self._stopped_waiters, []
            for waiter in waiters:
                waiter.callback(None)

        d.addBoth(done)
        self._stopping = d
        return d

    # -- shutdown steps ------------------------------------------------------------------

    def _sweep_http(self) -> List[Any]:
        """Close idle HTTP connections; mark busy ones to close after their
        response. Returns the requests still in flight."""
        busy = []
        for proto in self.http_connections:
            requests = _http_requests(proto)
            if not requests:
                _close_http(proto)
                continue
            channel = _http_channel(proto)
            channel.persistent = False
            for request in requests:
                if not getattr(request, "startedWriting", True):
                    request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            busy.extend(requests)
        return busy

    def _busy_tcp(self) -> List[Any]:
        return [proto for proto in self.tcp_connections if _tcp_pending(proto)]

    def _poll(self, until: float, check: Any) -> Deferred[Any]:
        """Call ``check()`` now and every ``poll_interval`` s until it returns a
        false value or ``until``; fire with its last value."""
        reactor = self.server.reactor
        result: Deferred[Any] = Deferred()

        def tick() -> None:
            value = check()
            if not value or reactor.seconds() >= until:
                result.callback(value)
            else:
                reactor.callLater(min(self.poll_interval, max(0.0, until - reactor.seconds())),
                                  tick)

        tick()
        return result

    def _drain_requests(self, until: float) -> Deferred[Any]:
        def check() -> Any:
            http_busy, tcp_busy = self._sweep_http(), self._busy_tcp()
            return (http_busy or tcp_busy) and (http_busy, tcp_busy)

        def describe(left: Any) -> Any:
            if not left:
                return ([], [])
            http_busy, tcp_busy = left
            return ([_describe_request(r) for r in http_busy],
                    [f"{getattr(p, 'client_id', '?')} ({_tcp_pending(p)} pending)"
                     for p in tcp_busy])

        return self._poll(until, check).addCallback(describe)

    def _close_all(self, deadline: float) -> Deferred[Any]:
        """Wait (until ``deadline``) for every connection to close; abort the rest."""
        def check() -> Any:
            self._sweep_http()
            return len(self.http_connections) + len(self.tcp_connections)

        def abort(left: Any) -> List[str]:
            aborted = []
            for proto in list(self.http_connections) + list(self.tcp_connections):
                aborted.append(_describe_peer(proto))
                _abort(proto)
            return aborted

        return self._poll(deadline, check).addCallback(abort)


def _describe_request(request: Any) -> str:
    method = getattr(request, "method", None) or b"?"
    uri = getattr(request, "uri", None) or b"?"
    return f"{method.decode('latin-1')} {uri.decode('latin-1')}"


def _describe_peer(proto: Any) -> str:
    client_id = getattr(proto, "client_id", None)
    if client_id:
        return f"tcp {client_id}"
    transport = getattr(_http_channel(proto), "transport", None)
    if transport is None:
        return "http ?"
    try:
        peer = transport.getPeer()
        return f"http {peer.host}:{peer.port}"
    except Exception:
        return "http ?"


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
        """The ``twisted.application`` service tree serving this app.

        One listener child per endpoint string (``endpoints`` maps ``"http"``
        and ``"tcp"`` to lists of them; default: from the config). All HTTP
        endpoints share one ``Site`` and all TCP endpoints one factory, so
        limits such as ``max_tcp_connections`` count across endpoints. The
        service starts the background-job runner and stops gracefully.
        """
        endpoints = endpoints if endpoints is not None else self.endpoints(protocol)
        listeners = []
        if endpoints.get("http"):
            site = self.site()
            for desc in endpoints["http"]:
                listeners.append(_ListenerService("http", desc, site, self))
        if endpoints.get("tcp"):
            factory = self.tcp_factory()
            for desc in endpoints["tcp"]:
                listeners.append(_ListenerService("tcp", desc, factory, self))
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
        ``run()`` (or twistd, or ``python -m pyliteflux``) started it.

        Safe to call from any thread (a background job, a signal handler's
        callback). On the reactor thread it returns a Deferred that fires
        when the graceful shutdown (see ``ServerService``) has finished.
        """
        reactor = self.reactor
        if threadable.ioThread is not None and not threadable.isInIOThread():
            reactor.callFromThread(self.stop)
            return succeed(None)
        service = self._service
        owns_reactor = self._running_reactor or (service is not None and service.owns_reactor)
        if owns_reactor and reactor.running:
            done = service.when_stopped() if service is not None else succeed(None)
            reactor.stop()  # the 'before shutdown' trigger runs the graceful stop
            return done
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
        # encode once per format (with its newline), not once per client
        json_line = encode_push(message, "json") + b"\n"
        xml_line: Optional[bytes] = None
        reached = 0
        for conn in targets:
            if conn.data_type == "xml":
                if xml_line is None:
                    xml_line = encode_push(message, "xml") + b"\n"
                if conn.push_line(xml_line):
                    reached += 1
            elif conn.push_line(json_line):
                reached += 1
        return reached

    def close_tcp_connections(self) -> int:
        """Send each TCP client a ``{"type": "shutdown"}`` line and close it
        cleanly (its queued output is flushed first). Returns how many."""
        conns = set(self.connections.values())
        if self._service is not None:
            conns.update(self._service.tcp_connections)
        told = 0
        for conn in conns:
            send = getattr(conn, "send_shutdown", None)
            if send is not None and not getattr(conn, "closing", False):
                send()
                told += 1
        return told
