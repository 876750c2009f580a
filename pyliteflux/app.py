"""``Server``: one application object serving HTTP and TCP.

The server owns its config, router, middleware, pipeline, background-job
runner and push hub, and hands the adapters a narrow ``AdapterContext``
of them. It runs three ways, all on the same service tree
(``make_service``):

- ``server.run()`` — start listening and block in the reactor (the seed);
- ``server.listen()`` — start inside a running reactor, get a Deferred of
  the bound ports (tests, embedding);
- ``twistd pyliteflux --app module:server`` — ``make_service`` under twistd.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python import threadable

from .adapters import AdapterContext, build_factory, http_resource
from .adapters.http import HTTPResource, Site
from .adapters.tcp import LineFactory
from .config import Config
from .core.middleware import MiddlewareManager
from .core.pipeline import Pipeline
from .core.routing import Route, Router
from .jobs import JobRunner
from .push import ConnectionRegistry, LocalBackend, PushHub
from .push.backends import backend_for
from .service import (
    ListenerService,
    Listening,
    ServerService,
    endpoint_string,
    importing_app,
    run_until_stopped,
)
from .service.adopted import AdoptedListenerService
from .service.loading import run_suppressed

__all__ = ["Server", "ConnectionRegistry", "Listening", "ServerService", "importing_app"]

_log = Logger(namespace="pyliteflux.server")
_SIDES = ("both", "http", "tcp")


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
        self.hub = PushHub(LocalBackend(self.config.node_id), lambda: self.config.max_topics_per_connection,
                           lambda: self.reactor)
        self.adapter_context = AdapterContext(self.pipeline.dispatch, self.jobs, self.config,
                                              self.hub, lambda: self.reactor)
        self._service: Optional[ServerService] = None
        self._running_reactor = False
        #: SPEC §16's metrics once counted (``enable_metrics``; ``metrics_endpoint``)
        self.metrics: Any = None
        #: this process's worker number, 0..N-1, under a supervisor (SPEC §15);
        #: None when the app runs without workers
        self.worker_id: Optional[int] = None

    # -- pieces ----------------------------------------------------------------------

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
            self.jobs._reactor = reactor
        return self._reactor

    @property
    def connections(self) -> ConnectionRegistry:
        """Live mapping ``client_id -> push target`` of this node."""
        return self.hub.connections

    @property
    def _active_connections(self) -> ConnectionRegistry:
        """The seed's name for ``connections``."""
        return self.hub.connections

    @property
    def resource(self) -> HTTPResource:
        """The ``twisted.web`` resource serving this app (mount it anywhere)."""
        return http_resource(self.adapter_context)

    def site(self) -> Site:
        """A ``twisted.web`` Site for the HTTP side."""
        return build_factory("http", self.adapter_context)  # type: ignore[no-any-return]

    def tcp_factory(self) -> LineFactory:
        """A protocol factory for the TCP side."""
        return build_factory("tcp", self.adapter_context)  # type: ignore[no-any-return]

    def add_middleware(self, middleware: Any, protocol: str = "both") -> Any:
        """Shortcut for ``server.middleware_manager.add_middleware``."""
        return self.middleware_manager.add_middleware(middleware, protocol)

    def route(self, path: str, method: Any = "GET", protocol: str = "http") -> Any:
        """Register on this server's router: ``@server.route("/x")``."""
        return self.router.register(path, method=method, protocol=protocol)

    def enable_metrics(self, **labels: str) -> Any:
        """Start counting SPEC §16's metrics; returns the ``ServerMetrics``
        (its ``registry`` is this server's own ``CollectorRegistry``).

        ``make_service`` calls it when ``metrics_endpoint`` is set; call it
        yourself to count without an endpoint (tests, an app that mounts
        ``MetricsResource`` itself). Factories built after this (a
        ``TestClient`` made afterwards too) record into it. ``labels`` are
        added to every series.
        """
        if self.metrics is None:
            from .observability import ServerMetrics

            self.metrics = ServerMetrics(self.hub, self.jobs, self.router, labels=labels)
            self.adapter_context.metrics = self.metrics
            self.pipeline.observers["tcp"] = self.metrics.observe_command
        return self.metrics

    # -- service tree ----------------------------------------------------------------------

    def endpoints(self, protocol: str = "both") -> Dict[str, List[str]]:
        """The endpoint strings each side will listen on, from the config."""
        if protocol not in _SIDES:
            raise ValueError(f"protocol must be one of {_SIDES}, got {protocol!r}")
        c = self.config
        out: Dict[str, List[str]] = {"http": [], "tcp": []}
        if protocol in ("both", "http"):
            out["http"].append(c.http_endpoint or endpoint_string(c.http_host, c.http_port))
        if protocol in ("both", "tcp"):
            out["tcp"].append(c.tcp_endpoint or endpoint_string(c.tcp_host, c.tcp_port))
        return out

    def make_service(self, protocol: str = "both",
                     endpoints: Optional[Dict[str, List[str]]] = None,
                     adopted: Optional[Dict[str, List[Tuple[int, str]]]] = None
                     ) -> ServerService:
        """The ``twisted.application`` service tree serving this app.

        One listener child per endpoint string (``endpoints`` maps a side,
        ``"http"`` or ``"tcp"``, to a list of them; default: from the config).
        All endpoints of a side share one factory, so limits such as
        ``max_tcp_connections`` count across endpoints. The service starts
        the background-job runner and the push backend (the one
        ``config.push_backend`` names), and stops gracefully.
        With ``metrics_endpoint`` it also serves ``/metrics``, ``/healthz`` and
        ``/readyz`` there, from before the listeners start until the graceful
        shutdown has ended.
        ``adopted`` (a worker's, SPEC §15) gives, per side and in the order of
        its endpoints, the inherited listening sockets ``(fd, family)`` to
        accept on instead of listening.
        """
        endpoints = endpoints if endpoints is not None else self.endpoints(protocol)
        self.hub.use_backend(backend_for(self.config, self.hub.backend, self._reactor))
        metrics_at = self.config.metrics_endpoint
        if metrics_at:
            self.enable_metrics()  # before the factories: they record into it
        listeners = []
        for side, descs in endpoints.items():
            if not descs:
                continue
            factory = build_factory(side, self.adapter_context)
            inherited = (adopted or {}).get(side, [])
            for i, desc in enumerate(descs):
                listener: Any
                if i < len(inherited):
                    listener = AdoptedListenerService(side, desc, inherited[i], factory,
                                                      lambda: self.reactor,
                                                      lambda: self.config.info)
                else:
                    listener = ListenerService(side, desc, factory, lambda: self.reactor,
                                               lambda: self.config.info)
                listeners.append(listener)
        service = ServerService(listeners, self.jobs, self.hub, self.config,
                                lambda: self.reactor)
        if metrics_at:
            from .observability import MetricsListener, Readiness

            service.add_monitor(MetricsListener(metrics_at, self.metrics,
                                                Readiness(service, self.hub),
                                                lambda: self.reactor, lambda: self.config.info))
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

        if run_suppressed():
            return
        if self._run_workers(protocol):
            return
        if self.config.info:
            start_console_logging(log_format=self.config.log_format)
        service = self.make_service(protocol)
        self._running_reactor = True
        try:
            failure = run_until_stopped(service, self.reactor)
        finally:
            self._running_reactor = False
            if self._service is service:
                self._service = None
        if failure is not None:
            failure.raiseException()

    def _run_workers(self, protocol: str) -> bool:
        """``run()`` as a worker or as the supervisor of ``config.workers``
        (SPEC §15); False when neither (one process serves)."""
        from .log import start_console_logging
        from .service.supervisor import Supervisor, run_supervisor, script_command
        from .service.worker import run_worker, worker_environment

        env = worker_environment()
        if env is not None:
            status = run_worker(self, env, self.reactor)
        elif self.config.workers > 1:
            if self.config.info:
                start_console_logging(log_format=self.config.log_format)
            supervisor = Supervisor(self.endpoints(protocol), self.config, script_command(),
                                    lambda: self.reactor)
            status = run_supervisor(supervisor, self.reactor)
        else:
            return False
        if status:
            raise SystemExit(status)
        return True

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

    def push_message(self, message: Any, client_id: Optional[str] = None,
                     topic: Optional[str] = None) -> Any:
        """Send ``message`` to one client, a topic's subscribers, or everyone.

        On the reactor thread it returns how many of this node's targets it
        reached (0 for an unknown ``client_id``, which is also logged). From
        any other thread (a background job) it is handed to the reactor and
        returns a ``concurrent.futures.Future`` of that count. Both
        ``client_id`` and ``topic``: ``ValueError``.
        """
        return self.hub.push_message(message, client_id, topic)

    def presence(self, topic: Optional[str] = None) -> Deferred[Dict[str, str]]:
        """A Deferred of ``{client_id: node_id}`` of every live push target
        (or only ``topic``'s subscribers)."""
        return self.hub.presence(topic)

    def close_tcp_connections(self) -> int:
        """Send each long-lived client a goodbye and close it cleanly (what
        shutdown does): every push target of this node, and every connection
        of the running service's listeners. Returns how many were told."""
        told = 0
        for target in list(self.hub.connections.values()):
            send = getattr(target, "send_shutdown", None)
            if send is not None and not getattr(target, "closing", False):
                send()
                told += 1
        service = self._service
        if service is not None:
            told += sum(d.say_goodbye() for d in service.drainables)
        return told
