"""SPEC §16's metrics: cheap counts on the hot path, read when scraped.

Nothing here updates a ``prometheus_client`` metric object per request.
The adapters count into plain dicts (one dict increment for a request, one
bisect for its duration), and the counters that exist already — the push
hub's ``stats``, the job runner's ``stats``, the factories' open
connections, the broker's ``up`` — are not copied at all: a
``prometheus_client`` *collector* reads every one of them when
``/metrics`` is scraped. Everything runs on the reactor thread (recording
and scraping alike), so no lock is taken.

Each server has its own ``CollectorRegistry`` (``ServerMetrics.registry``),
not the process-wide one, so two servers in one process (tests, embedding)
never mix their series.

Label values stay bounded: ``route`` is a registered pattern or
``"<unmatched>"``, ``command`` a registered name or ``"<unknown>"``,
``method`` one of ``HTTP_METHODS`` or ``"OTHER"``; nothing a client
chooses becomes a label.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple
from weakref import WeakSet

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.python.failure import Failure

from ..core.pipeline import is_deferred
from ..core.routing import HTTP_METHODS, UNMATCHED

__all__ = ["ServerMetrics", "WorkerAggregate", "DEFAULT_BUCKETS", "UNKNOWN_COMMAND",
           "UNMATCHED", "METRICS", "TRANSPORTS"]

#: the ``command`` label of a command no route is registered for
UNKNOWN_COMMAND = "<unknown>"

#: request duration buckets, in seconds (upper bounds; ``+Inf`` is implied)
DEFAULT_BUCKETS: Tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: transports always reported by ``pyliteflux_connections`` (0 when none is open)
TRANSPORTS = ("http", "tcp", "websocket", "sse")

#: SPEC §16's table: name -> (type, labels). The docs and the dashboard use these.
METRICS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "pyliteflux_http_requests_total": ("counter", ("method", "route", "status")),
    "pyliteflux_http_request_duration_seconds": ("histogram", ("method", "route")),
    "pyliteflux_commands_total": ("counter", ("command", "transport", "outcome")),
    "pyliteflux_connections": ("gauge", ("transport",)),
    "pyliteflux_push_messages_total": ("counter", ("kind",)),
    "pyliteflux_push_deliveries_total": ("counter", ("transport",)),
    "pyliteflux_push_dropped_total": ("counter", ("reason",)),
    "pyliteflux_jobs": ("gauge", ("state",)),
    "pyliteflux_jobs_total": ("counter", ("outcome",)),
    "pyliteflux_broker_up": ("gauge", ()),
}

_METHOD_LABELS: Dict[bytes, str] = {m.encode(): m for m in HTTP_METHODS}
_METHOD_LABELS[b"OTHER"] = "OTHER"


class ServerMetrics:
    """The metrics of one server: where adapters record, and the collector
    that turns those counts and the server's own counters into SPEC §16's
    families.

    ``hub`` (its ``stats``, ``connections`` and ``backend.up``), ``jobs``
    (its ``stats``) and ``router`` (``has_command``) are read at scrape
    time. ``labels`` are added to every series (e.g. ``{"worker": "2"}``).
    """

    def __init__(self, hub: Any, jobs: Any, router: Any,
                 buckets: Sequence[float] = DEFAULT_BUCKETS,
                 labels: Optional[Mapping[str, str]] = None) -> None:
        self.hub = hub
        self.jobs = jobs
        self.router = router
        self.bounds: Tuple[float, ...] = tuple(sorted(buckets))
        self.labels: Dict[str, str] = dict(labels or {})
        #: (method bytes, route, status) -> [count per duration bucket...,
        #: count over the last bound, sum of durations]
        self.http_slots: Dict[Tuple[bytes, str, int], List[float]] = {}
        #: (command, transport, outcome) -> commands
        self.commands: Dict[Tuple[str, str, str], int] = {}
        self._factories: "WeakSet[Any]" = WeakSet()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]

    # -- recording (the hot path) -------------------------------------------------------

    def http(self, method: bytes, route: str, status: int, seconds: float) -> None:
        """One finished HTTP response (our ``Site.log`` calls this).

        # PERF: one dict lookup and one bisect per request; the request count
        and the duration histogram are both read from the same slots.
        """
        slots = self.http_slots.get((method, route, status))
        if slots is None:
            slots = self._new_slots(method, route, status)
        slots[bisect_left(self.bounds, seconds)] += 1
        slots[-1] += seconds

    def _new_slots(self, method: bytes, route: str, status: int) -> List[float]:
        if method not in _METHOD_LABELS:  # a method a client made up: one label for all
            method = b"OTHER"
        slots = self.http_slots.get((method, route, status))
        if slots is None:
            slots = self.http_slots[(method, route, status)] = [0] * (len(self.bounds) + 2)
        return slots

    def http_requests(self) -> Dict[Tuple[str, str, int], int]:
        """``(method, route, status) -> responses`` so far."""
        return {(_METHOD_LABELS.get(m, "OTHER"), route, status): int(sum(slots[:-1]))
                for (m, route, status), slots in list(self.http_slots.items())}

    def http_durations(self) -> Dict[Tuple[str, str], List[float]]:
        """``(method, route) -> [count per bucket..., over the last bound, sum]``
        (the statuses of a route added up)."""
        out: Dict[Tuple[str, str], List[float]] = {}
        for (m, route, _), slots in list(self.http_slots.items()):
            key = (_METHOD_LABELS.get(m, "OTHER"), route)
            total = out.get(key)
            if total is None:
                out[key] = list(slots)
            else:
                for i, count in enumerate(slots):
                    total[i] += count
        return out

    def observe_command(self, request: Any, value: Any) -> None:
        """What the pipeline returned for a command (``Pipeline.observers``):
        counted now, or when its Deferred fires."""
        if is_deferred(value):
            value.addBoth(self._command_done, request)
        else:
            self.command(request.command, request.transport, request.failed)

    def _command_done(self, result: Any, request: Any) -> Any:
        self.command(request.command, request.transport,
                     request.failed or isinstance(result, Failure))
        return result

    def command(self, name: str, transport: str, failed: bool) -> None:
        """One answered command; ``name`` becomes ``"<unknown>"`` unless registered."""
        if not self.router.has_command(name):
            name = UNKNOWN_COMMAND
        key = (name, transport, "error" if failed else "ok")
        commands = self.commands
        commands[key] = commands.get(key, 0) + 1

    def watch(self, factory: Any) -> None:
        """Count ``factory``'s open connections (``open_count()``) under its
        ``side`` as a transport, for as long as the factory exists."""
        self._factories.add(factory)

    # -- reading (at scrape time) ---------------------------------------------------------

    def connections(self) -> Dict[str, int]:
        """Open connections per transport, counted now: the watched factories
        for their sides, the hub's registry for the push targets of any other
        transport (WebSocket, SSE)."""
        counts = dict.fromkeys(TRANSPORTS, 0)
        sides = set()
        for factory in list(self._factories):
            sides.add(factory.side)
            counts[factory.side] = counts.get(factory.side, 0) + factory.open_count()
        for target in list(self.hub.connections.values()):
            name = getattr(target, "transport_name", "tcp")
            if name not in sides:
                counts[name] = counts.get(name, 0) + 1
        return counts

    def exposition(self) -> bytes:
        """The Prometheus text format of every series, now."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """The ``prometheus_client`` collector protocol."""
        extra = self.labels
        names, values = tuple(extra), tuple(extra.values())

        def counter(name: str, doc: str, labels: Tuple[str, ...],
                    samples: Iterable[Tuple[Tuple[Any, ...], float]]) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=labels + names)
            for key, value in samples:
                family.add_metric([str(k) for k in key] + list(values), value)
            return family

        def gauge(name: str, doc: str, labels: Tuple[str, ...],
                  samples: Iterable[Tuple[Tuple[Any, ...], float]]) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=labels + names)
            for key, value in samples:
                family.add_metric([str(k) for k in key] + list(values), value)
            return family

        yield counter("pyliteflux_http_requests", "HTTP responses sent.",
                      ("method", "route", "status"), list(self.http_requests().items()))
        yield self._durations(names, values)
        yield counter("pyliteflux_commands", "Commands answered (TCP, WebSocket).",
                      ("command", "transport", "outcome"), list(self.commands.items()))
        yield gauge("pyliteflux_connections", "Open connections.", ("transport",),
                    [((t,), n) for t, n in self.connections().items()])
        stats = self.hub.stats
        yield counter("pyliteflux_push_messages", "push_message calls.", ("kind",),
                      [((k,), n) for k, n in stats.messages.items()])
        yield counter("pyliteflux_push_deliveries", "Push lines handed to a target.",
                      ("transport",), [((t,), n) for t, n in stats.deliveries.items()])
        yield counter("pyliteflux_push_dropped", "Pushes not delivered.", ("reason",),
                      [((r,), n) for r, n in stats.dropped.items()])
        jobs = self.jobs.stats
        yield gauge("pyliteflux_jobs", "Background jobs waiting for a thread or running.",
                    ("state",), [(("queued",), jobs.queued), (("running",), jobs.running)])
        yield counter("pyliteflux_jobs", "Background jobs ended or refused.", ("outcome",),
                      [(("done",), jobs.done), (("failed",), jobs.failed),
                       (("rejected",), jobs.rejected)])
        yield gauge("pyliteflux_broker_up", "1 when the push backend is connected (or local).",
                    (), [((), 1 if self.hub.backend.up else 0)])

    def _durations(self, names: Tuple[str, ...], values: Tuple[str, ...]) -> Metric:
        family = HistogramMetricFamily("pyliteflux_http_request_duration_seconds",
                                       "Time from processing a request to its response's end.",
                                       labels=("method", "route") + names)
        bounds = self.bounds
        for (method, route), slots in self.http_durations().items():
            cumulative, buckets = 0.0, []
            for bound, count in zip(bounds, slots, strict=False):
                cumulative += count
                buckets.append((_le(bound), cumulative))
            cumulative += slots[len(bounds)]
            buckets.append(("+Inf", cumulative))
            family.add_metric([method, route] + list(values), buckets, slots[-1])
        return family


def _le(bound: float) -> str:
    return repr(float(bound))


class WorkerAggregate:
    """One endpoint for many worker processes (SPEC §15/§16): a collector
    that merges each live worker's exposition text, adding a ``worker``
    label to every series.

    ``sources()`` returns ``{worker_name: text}`` for the workers alive now
    (the supervisor asks each for its ``ServerMetrics.exposition()``); a
    worker that was replaced is simply not in it any more, so its series go
    away. ``pyliteflux_broker_up`` is reported per worker like the rest.
    """

    def __init__(self, sources: Callable[[], Mapping[str, str]]) -> None:
        self.sources = sources
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]

    def collect(self) -> Iterator[Metric]:
        # by name *and* type: the parser names the counter pyliteflux_jobs_total
        # "pyliteflux_jobs", like the gauge pyliteflux_jobs
        merged: Dict[Tuple[str, str], Metric] = {}
        for worker, text in sorted(self.sources().items()):
            for family in text_string_to_metric_families(text):
                key = (family.name, family.type)
                target = merged.get(key)
                if target is None:
                    target = merged[key] = Metric(family.name, family.documentation,
                                                  family.type, family.unit)
                for sample in family.samples:
                    labels = dict(sample.labels, worker=str(worker))
                    target.add_sample(sample.name, labels, sample.value)
        yield from merged.values()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
