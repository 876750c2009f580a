"""The metrics endpoint: ``GET /metrics``, ``/healthz`` and ``/readyz`` on a
listener of its own (``metrics_endpoint``), apart from the app's HTTP
listeners so that metrics are not public by default.

It is a small ``twisted.web`` resource tree on the reactor thread. (The
``prometheus_client.twisted`` resource runs the exposition in a WSGI thread
pool of the global reactor; our collector reads reactor-thread state, and
one scrape costs well under a millisecond, so it is served in place.)

The listener is a *monitor* of the ``ServerService``: it starts before the
app's listeners and stops after the graceful shutdown has finished, so a
load balancer probing ``/readyz`` sees 503 while the app is starting and
while it drains.
"""

from __future__ import annotations

import json
from typing import Any, Callable, List, Tuple, cast
from weakref import WeakSet

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ..service.listeners import ListenerService

__all__ = ["Readiness", "MetricsResource", "HealthResource", "ReadyResource",
           "MetricsSite", "MetricsListener", "metrics_root"]

#: the classic Prometheus text format (what ``generate_latest`` writes for our
#: names, which need no UTF-8 escaping); every Prometheus version reads it
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

#: (ready, why): why is "ready", "starting", "draining", "stopped" or "broker down"
#: (a supervisor's check returns a Deferred of that, asked of its workers)
Check = Callable[[], Any]


class Readiness:
    """Whether the app should get traffic: its service is serving (not
    starting, draining or stopped) and its push backend is up (a node whose
    broker link is down must not look healthy to the load balancer)."""

    def __init__(self, service: Any, hub: Any) -> None:
        self.service = service
        self.hub = hub

    def __call__(self) -> Tuple[bool, str]:
        state = self.service.state
        if state != "serving":
            return False, state
        if not self.hub.backend.up:
            return False, "broker down"
        return True, "ready"


def _json(request: Any, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(body).encode()


class MetricsResource(Resource):
    """``GET /metrics``: the Prometheus text format of a ``ServerMetrics``
    (or of anything with an ``exposition()``, e.g. a ``WorkerAggregate``)."""

    isLeaf = True

    def __init__(self, metrics: Any) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Any) -> Any:
        request.setHeader(b"Content-Type", CONTENT_TYPE)
        body = self.metrics.exposition()
        if not isinstance(body, Deferred):
            return body
        return _later(request, body, lambda data: data)  # a supervisor's (workers.py)


def _later(request: Any, d: "Deferred[Any]", render: Callable[[Any], bytes]) -> Any:
    """Answer ``request`` with ``render(result)`` once ``d`` fires (a 500 if
    it fails); nothing if the client has gone meanwhile."""
    finished: List[bool] = []
    request.notifyFinish().addBoth(lambda _: finished.append(True))

    def write(result: Any) -> None:
        if not finished:
            request.write(render(result))
            request.finish()

    def failed(failure: Any) -> None:
        if not finished:
            request.setResponseCode(500)
            request.write(b"# failed\n")
            request.finish()

    d.addCallback(write).addErrback(failed)
    return NOT_DONE_YET


class HealthResource(Resource):
    """``GET /healthz``: 200 while the process runs (and its reactor answers)."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return _json(request, 200, {"status": "ok"})


class ReadyResource(Resource):
    """``GET /readyz``: 200 when serving; 503 with the reason otherwise."""

    isLeaf = True

    def __init__(self, check: Check) -> None:
        super().__init__()
        self.check = check

    def render_GET(self, request: Any) -> Any:
        answer = self.check()
        if isinstance(answer, Deferred):  # a supervisor's, asking its workers
            return _later(request, answer, lambda result: _json(request, *_ready(result)))
        return _json(request, *_ready(answer))


def _ready(answer: Tuple[bool, str]) -> Tuple[int, Any]:
    ready, why = answer
    return 200 if ready else 503, {"status": why}


class _NotFound(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        return _json(request, 404, {"error": "Not Found"})


class _Root(Resource):
    def getChild(self, path: bytes, request: Any) -> Resource:
        return _NotFound()


def metrics_root(metrics: Any, check: Check) -> Resource:
    """The resource tree: ``/metrics``, ``/healthz``, ``/readyz``."""
    root = _Root()
    root.putChild(b"metrics", cast(Any, MetricsResource(metrics)))  # (zope types poorly)
    root.putChild(b"healthz", cast(Any, HealthResource()))
    root.putChild(b"readyz", cast(Any, ReadyResource(check)))
    return root


class MetricsSite(Site):
    """A plain ``twisted.web`` Site that does not log each scrape and can
    close its connections when the endpoint stops."""

    noisy = False

    def __init__(self, resource: Resource, **kwargs: Any) -> None:
        super().__init__(resource, **kwargs)
        self._channels: "WeakSet[Any]" = WeakSet()

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        self._channels.add(channel)
        return channel

    def log(self, request: Any) -> None:
        """Scrapes and probes are not access-logged (they come every few seconds)."""

    def close_connections(self) -> None:
        for channel in list(self._channels):
            transport = getattr(channel, "transport", None)
            if transport is not None:
                transport.loseConnection()


class MetricsListener(ListenerService):
    """The metrics endpoint's listener: a monitor of the ``ServerService``
    (started first, stopped last)."""

    def __init__(self, endpoint_desc: str, metrics: Any, check: Check,
                 reactor: Callable[[], Any], info: Callable[[], bool]) -> None:
        site = MetricsSite(metrics_root(metrics, check))
        super().__init__("metrics", endpoint_desc, site, reactor, info)

    def stopService(self) -> Any:
        d = super().stopService()
        self.factory.close_connections()
        return d

