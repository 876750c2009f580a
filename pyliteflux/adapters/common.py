"""What every adapter shares: the narrow view of the app it is given, the
bookkeeping of its open connections, and the steps each one takes around
the pipeline.

An adapter turns bytes from one transport into our requests, hands them to
``context.dispatch`` (the one pipeline), writes the value that comes back,
then starts the request's background jobs. It never sees the ``Server``.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from ..core.errors import INTERNAL_ERROR
from ..core.pipeline import is_deferred
from ..core.routing import UNMATCHED

__all__ = ["AdapterContext", "ConnectionSet", "when_done", "cancel_if_pending",
           "INTERNAL_ERROR"]

_log = Logger(namespace="pyliteflux.adapters")


class AdapterContext:
    """The parts of an app an adapter uses, and nothing else.

    ``dispatch(request)`` runs the pipeline (a value, or a Deferred of it
    that never errbacks); ``jobs`` starts background jobs; ``hub`` takes
    push targets; ``config`` is the live config; ``reactor`` is resolved
    lazily (the global one unless the app was given another); ``metrics``
    is where counts go, when they are kept.
    """

    __slots__ = ("dispatch", "jobs", "config", "hub", "_reactor", "shared", "metrics")

    def __init__(self, dispatch: Callable[[Any], Any], jobs: Any, config: Any, hub: Any,
                 reactor: Callable[[], Any]) -> None:
        self.dispatch = dispatch
        self.jobs = jobs
        self.config = config
        self.hub = hub
        self._reactor = reactor
        #: objects adapters share between their factories (the HTTP resource)
        self.shared: Dict[str, Any] = {}
        #: the server's ``observability.ServerMetrics`` once metrics are on (else
        #: None): factories built after that record into it
        self.metrics: Any = None

    @property
    def reactor(self) -> Any:
        return self._reactor()


#: seconds a connection that has sent nothing yet keeps, once shutdown has begun
FRESH_GRACE = 0.5


class ConnectionSet:
    """The open connections of one factory, for graceful shutdown.

    A factory mixes this in, calls ``track(proto)`` from its own
    ``buildProtocol`` and its protocols call ``forget(self)`` from their
    ``connectionLost``: tracking is the factory's own code, not a wrapper.
    """

    def _open(self) -> Set[Any]:
        opened = self.__dict__.get("_open_connections")
        if opened is None:
            opened = self.__dict__["_open_connections"] = set()
        return opened

    def track(self, proto: Any) -> None:
        self._open().add(proto)

    def forget(self, proto: Any) -> None:
        self._open().discard(proto)

    def connections(self) -> List[Any]:
        """A snapshot of the open connections."""
        return list(self._open())

    def open_count(self) -> int:
        return len(self._open())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.connections())

    def spare_fresh(self, proto: Any, now: float) -> bool:
        """Whether a graceful shutdown leaves ``proto`` open a little longer:
        a connection accepted just before the listener stopped whose request
        has not been read yet (``proto.fresh``) gets ``FRESH_GRACE`` seconds
        to send it, rather than a close without a response (which no client
        retries: the connection had never been used)."""
        if not getattr(proto, "fresh", False):
            return False
        since = getattr(proto, "spared_since", None)
        if since is None:
            since = proto.spared_since = now
        return now - since < FRESH_GRACE

    def abort_connections(self, kind: str) -> List[str]:
        """Drop every open connection now (the shutdown deadline); returns
        ``"<kind> host:port"`` for each, for the shutdown warning."""
        aborted = []
        for proto in self:
            transport = proto.transport
            if transport is None:
                continue
            try:
                peer = transport.getPeer()
                aborted.append(f"{kind} {peer.host}:{peer.port}")
            except Exception:
                aborted.append(f"{kind} ?")
            getattr(transport, "abortConnection", transport.loseConnection)()
        return aborted


# (module level: a Logger that is a class attribute takes the class's name)
_access_log = Logger(namespace="pyliteflux.access")


def log_response(metrics: Any, info: bool, request: Any, client: str) -> None:
    """What every HTTP engine does as a response finishes: count it (SPEC §16)
    and write the access log line (when ``info``). ``request`` has ``method``,
    ``uri``, ``code``, ``sentLength``, ``route`` and ``started``
    (``perf_counter()`` when it began)."""
    started = getattr(request, "started", 0.0)  # (a plain Twisted request has neither)
    route = getattr(request, "route", UNMATCHED)
    if metrics is not None:
        metrics.http(request.method, route, request.code,
                     perf_counter() - started if started else 0.0)
    if info:
        uri = request.uri.decode("ascii", "replace")
        _access_log.info(
            "{client} {method} {uri} {code} {length}",
            client=client,
            method=request.method.decode("ascii", "replace"),
            uri=uri,
            path=uri.split("?", 1)[0],
            code=request.code,
            status=request.code,
            route=route,
            length=request.sentLength,
            duration=round(perf_counter() - started, 6) if started else None,
        )


def when_done(value: Any, done: Callable[..., Any], failed: Callable[..., Any],
              *args: Any) -> Optional[Deferred[Any]]:
    """If the pipeline's ``value`` is still to come, call ``done(result, *args)``
    when it is and return the Deferred (to cancel if the client goes);
    otherwise return None and let the caller write ``value`` now.

    The pipeline itself never errbacks, so a failure that reaches
    ``failed(failure, *args)`` is a bug in ``done`` (the writer) or a
    cancellation: it is logged here, unless it is a cancellation, and
    ``failed`` answers the client with ``INTERNAL_ERROR`` if it still can.
    """
    if not is_deferred(value):
        return None
    value.addCallback(done, *args)
    value.addErrback(_writer_failed, failed, args)
    return value


def _writer_failed(failure: Any, failed: Callable[..., Any], args: Any) -> None:
    if failure.check(CancelledError):
        return None
    _log.failure("unexpected error writing a response", failure=failure)
    failed(failure, *args)
    return None


def cancel_if_pending(pending: Optional[Deferred[Any]]) -> None:
    """The client went away: stop the handler's work (its Deferred is cancelled)."""
    if pending is not None and not pending.called:
        pending.cancel()
