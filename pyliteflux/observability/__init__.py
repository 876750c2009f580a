"""Observability (SPEC §16): Prometheus metrics, health and readiness, JSON logs.

- ``metrics``: ``ServerMetrics`` — cheap counts on the hot path and a
  collector reading the server's own counters when scraped, in a registry
  of the server's own; ``WorkerAggregate`` for one endpoint over workers;
- ``endpoint``: the ``/metrics``, ``/healthz``, ``/readyz`` resources and
  the listener serving them at ``metrics_endpoint``; ``Readiness``;
- ``jsonlog``: the ``twisted.logger`` observer of ``log_format = "json"``;
- ``workers``: the supervisor's endpoint under workers (SPEC §15), which
  asks each worker for its metrics (imported by the supervisor only).
"""

from .endpoint import MetricsListener, MetricsResource, MetricsSite, Readiness, metrics_root
from .jsonlog import JSONLogObserver, json_observer
from .metrics import (
    DEFAULT_BUCKETS,
    METRICS,
    UNKNOWN_COMMAND,
    UNMATCHED,
    ServerMetrics,
    WorkerAggregate,
)

__all__ = [
    "ServerMetrics", "WorkerAggregate", "METRICS", "DEFAULT_BUCKETS", "UNKNOWN_COMMAND",
    "UNMATCHED", "MetricsListener", "MetricsResource", "MetricsSite", "Readiness",
    "metrics_root", "JSONLogObserver", "json_observer",
]
