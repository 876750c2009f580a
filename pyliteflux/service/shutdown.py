"""The service tree of a running app, and its graceful shutdown.

Shutdown asks each listener's factory — a ``Drainable`` — what it has open,
instead of reading Twisted's internals: the HTTP ``Site`` and the TCP
``LineFactory`` (and any later adapter) each know their own connections.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from .listeners import ListenerService, Listening
from .runner import TwistdLogging

__all__ = ["Drainable", "ServerService"]

_log = Logger(namespace="pyliteflux.server")


class Drainable(Protocol):
    """The side of an adapter that graceful shutdown talks to."""

    side: str

    def close_idle(self) -> None:
        """Close connections with nothing in flight; let busy ones finish and
        close after their response. Called repeatedly while draining."""

    def busy(self) -> List[str]:
        """What is still in flight, described for the log (empty: nothing)."""

    def say_goodbye(self) -> int:
        """Tell long-lived clients the server is going away and close them
        cleanly; how many were told."""

    def open_count(self) -> int:
        """Connections still open."""

    def abort(self) -> List[str]:
        """Abort every open connection; their descriptions."""


class ServerService(TwistdLogging, MultiService):
    """The listeners of an app plus its jobs and push backend, stopped gracefully.

    Stopping it, within ``config.shutdown_timeout`` seconds in total:

    1. stops accepting (every listener stops listening);
    2. closes idle keep-alive connections at once and lets in-flight HTTP
       requests and commands finish (HTTP connections close after the
       response: ``Connection: close``);
    3. drains background jobs (SPEC §8) — before long-lived clients are told
       goodbye, so a job's ``push_message`` still reaches its client;
    4. tells each long-lived client goodbye (TCP: a ``{"type": "shutdown"}``
       line) and closes it cleanly, waiting for the close;
    5. at the deadline, logs whatever was abandoned (requests, commands,
       jobs, connections) and aborts the connections still open; then stops
       the push backend.

    The last ``min(0.5, timeout / 4)`` seconds of the budget are kept for
    step 4, so even a stuck request still lets clients hear about the
    shutdown. The Deferred fires when all of it is done (never errbacks).
    """

    #: seconds between checks for in-flight work while draining
    poll_interval = 0.05

    def __init__(self, listeners: List[ListenerService], jobs: Any, hub: Any, config: Any,
                 reactor: Callable[[], Any]) -> None:
        super().__init__()
        self.listeners = listeners
        self.jobs = jobs
        self.hub = hub
        self.config = config
        self._reactor = reactor
        #: True when stopping this service should stop the reactor too
        #: (``server.run()``, ``twistd``, ``python -m pyliteflux``).
        self.owns_reactor = False
        self._stopping: Optional[Deferred[Any]] = None
        self._stopped = False
        self._stopped_waiters: List[Deferred[Any]] = []
        self.drainables: List[Drainable] = []
        #: services that run for the whole life of this one, outside the graceful
        #: shutdown: started before the listeners, stopped after everything else
        #: (the metrics endpoint, so ``/readyz`` answers 503 while draining)
        self.monitors: List[Any] = []
        #: a ``twisted.logger`` observer for twistd to log to (``log_format``): set
        #: on the application when twistd makes this service its child
        self.log_observer: Any = None
        for listener in listeners:
            if listener.factory not in self.drainables:  # one factory may serve many endpoints
                self.drainables.append(listener.factory)
            listener.setServiceParent(self)

    def startService(self) -> None:
        jobs, config = self.jobs, self.config
        if jobs._pool is None:  # not started yet: take the config as it is now
            jobs.threads = config.bg_threads
            jobs.max_queued = config.bg_max_queued
        self._stopping = None
        self._stopped = False
        jobs.start()
        for monitor in self.monitors:
            if not monitor.running:
                monitor.startService()
        self.hub.backend.start(self.hub)
        super().startService()

    def add_monitor(self, service: Any) -> None:
        """Run ``service`` alongside, outside the graceful shutdown (see ``monitors``)."""
        self.monitors.append(service)
        if self.running:
            service.startService()

    @property
    def state(self) -> str:
        """``"starting"`` (listeners not up yet), ``"serving"``, ``"draining"``
        (a stop has begun) or ``"stopped"``: what ``/readyz`` reports."""
        if self._stopping is not None:
            return "stopped" if self._stopped else "draining"
        if not self.running:
            return "stopped" if self._stopped else "starting"
        if all(listener.port is not None for listener in self.listeners):
            return "serving"
        return "starting"

    def listening(self) -> Deferred[Listening]:
        """Fires with the bound ports once every listener is up."""
        result = Listening()
        listeners = self.listeners + [m for m in self.monitors if isinstance(m, ListenerService)]

        def collect(_: Any) -> Listening:
            for listener in listeners:
                result.ports.setdefault(listener.side, []).append(listener.port)
            return result

        d: Deferred[Any] = gatherResults([listener.listening for listener in listeners],
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

    def open_connections(self) -> int:
        return sum(d.open_count() for d in self.drainables)

    def stopService(self) -> Deferred[Any]:
        if self._stopping is not None:  # already stopping: share the same shutdown
            return self.when_stopped()
        reactor = self._reactor()
        timeout = self.config.shutdown_timeout
        started = reactor.seconds()
        deadline = started + timeout
        drain_until = deadline - min(0.5, timeout / 4)
        report: Dict[str, Any] = {}

        d = super().stopService() or succeed(None)  # 1. stop accepting
        d.addErrback(lambda f: _log.failure("shutdown: stopping a listener failed", f))
        if self.config.info:
            d.addCallback(lambda _: _log.info(
                "shutdown: stopped accepting; draining for up to {timeout}s", timeout=timeout))
        d.addCallback(lambda _: self._drain_requests(drain_until))  # 2.

        def drain_jobs(leftover: Any) -> Deferred[Any]:  # 3.
            report["requests"] = leftover
            return self.jobs.stop(max(0.0, drain_until - reactor.seconds()))

        d.addCallback(drain_jobs)

        def close_connections(abandoned_jobs: Any) -> Deferred[Any]:  # 4.
            report["jobs"] = abandoned_jobs
            for drainable in self.drainables:
                drainable.say_goodbye()
            return self._close_all(deadline)

        d.addCallback(close_connections)

        def stop_backend(aborted: Any) -> Deferred[Any]:
            report["aborted"] = aborted
            backend_stopped = maybeDeferred(self.hub.backend.stop)
            backend_stopped.addErrback(lambda f: _log.failure("shutdown: push backend", f))
            return backend_stopped

        d.addCallback(stop_backend)
        d.addBoth(self._stop_monitors)
        d.addBoth(self._report, report, started, timeout)
        self._stopping = d
        return d

    def _stop_monitors(self, result: Any) -> Deferred[Any]:
        """The last step: stop the monitors; pass ``result`` on."""
        stopping = [maybeDeferred(m.stopService) for m in self.monitors if m.running]
        done: Deferred[Any] = gatherResults(stopping, consumeErrors=True)
        done.addErrback(lambda f: _log.failure("shutdown: stopping a monitor failed", f))
        return done.addCallback(lambda _: result)

    def _report(self, result: Any, report: Dict[str, Any], started: float,
                timeout: float) -> None:  # 5.
        if isinstance(result, Failure):
            _log.failure("shutdown failed", result)
        elapsed = self._reactor().seconds() - started
        leftover = report.get("requests") or {}
        aborted = report.get("aborted") or []
        jobs = report.get("jobs") or []
        if any(leftover.values()) or jobs or aborted:
            http_reqs, tcp_cmds = leftover.get("http", []), leftover.get("tcp", [])
            _log.warn(
                "shutdown: gave up after {elapsed:.2f}s (shutdown_timeout={timeout}s): abandoned "
                "{n_http} HTTP request(s) {http}, {n_tcp} TCP command(s) {tcp}, "
                "{n_jobs} background job(s), aborted {n_conn} connection(s)",
                timeout=timeout, elapsed=elapsed, n_http=len(http_reqs), http=http_reqs,
                n_tcp=len(tcp_cmds), tcp=tcp_cmds, n_jobs=len(jobs), n_conn=len(aborted),
                abandoned=leftover)
        elif self.config.info:
            _log.info("shutdown complete in {elapsed:.2f}s", elapsed=elapsed)
        self._stopped = True
        waiters, self._stopped_waiters = self._stopped_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # -- shutdown steps ------------------------------------------------------------------

    def _poll(self, until: float, check: Callable[[], Any]) -> Deferred[Any]:
        """Call ``check()`` now and every ``poll_interval`` s until it returns a
        false value or ``until``; fire with its last value."""
        reactor = self._reactor()
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

    def _busy(self) -> Dict[str, List[str]]:
        """Each side's work in flight, after closing what is idle."""
        busy: Dict[str, List[str]] = {}
        for drainable in self.drainables:
            drainable.close_idle()
            found = drainable.busy()
            if found:
                busy.setdefault(drainable.side, []).extend(found)
        return busy

    def _drain_requests(self, until: float) -> Deferred[Any]:
        return self._poll(until, self._busy).addCallback(lambda left: left or {})

    def _close_all(self, deadline: float) -> Deferred[Any]:
        """Wait (until ``deadline``) for every connection to close; abort the rest."""
        def check() -> int:
            for drainable in self.drainables:
                drainable.close_idle()
            return self.open_connections()

        def abort(left: Any) -> List[str]:
            aborted: List[str] = []
            for drainable in self.drainables:
                aborted.extend(drainable.abort())
            return aborted

        return self._poll(deadline, check).addCallback(abort)
