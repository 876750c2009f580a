"""The supervisor's metrics endpoint under workers (SPEC §15 and §16).

With ``workers > 1`` the workers do not listen on ``metrics_endpoint``
(they would race for one port); the supervisor does. Each scrape asks every
ready worker for its exposition over the control connection (``Scrape``,
``push.relay``) and serves them merged by ``WorkerAggregate``, with a
``worker="<n>"`` label on every series. A worker that does not answer
within ``timeout`` seconds is left out of that scrape (its series are
missing once rather than the scrape hanging).

``/readyz`` on the supervisor is 200 while it is not stopping and at least
one worker is ready: serving, and its push broker up (a Redis outage that
every worker sees is a 503 "broker down", as for one process).
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Tuple

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger

from ..push.relay import Health, Scrape
from .metrics import WorkerAggregate

__all__ = ["SupervisorMetrics", "SupervisorReadiness"]

_log = Logger(namespace="pyliteflux.metrics")


def _ready_workers(supervisor: Any) -> List[Any]:
    return [w for w in supervisor.workers.values()
            if w.ready.called and not w.exited.called and w.control is not None
            and w.control.connected]


class SupervisorMetrics:
    """``exposition()`` (a Deferred of bytes): every ready worker's metrics,
    each series labelled with its worker."""

    timeout = 5.0

    def __init__(self, supervisor: Any, reactor: Callable[[], Any]) -> None:
        self.supervisor = supervisor
        self._reactor = reactor

    def _ask(self, worker: Any) -> "Deferred[Tuple[str, str]]":
        d = worker.control.callRemote(Scrape)
        d.addTimeout(self.timeout, self._reactor())

        def answered(answer: Mapping[str, Any]) -> Tuple[str, str]:
            return str(worker.worker_id), str(answer["text"])

        def failed(failure: Any) -> Tuple[str, str]:
            _log.warn("worker {n} gave no metrics: {why}", n=worker.worker_id,
                      why=failure.getErrorMessage())
            return str(worker.worker_id), ""

        return d.addCallbacks(answered, failed)

    def exposition(self) -> "Deferred[bytes]":
        asked = [self._ask(w) for w in _ready_workers(self.supervisor)]

        def merged(answers: List[Tuple[str, str]]) -> bytes:
            texts = {n: text for n, text in answers if text}
            return WorkerAggregate(lambda: texts).exposition()

        return gatherResults(asked).addCallback(merged)


class SupervisorReadiness:
    """``/readyz`` of the supervisor: a Deferred of ``(ready, why)``, ready
    while it is not stopping and at least one worker is (serving, its push
    broker up: each worker's own ``Readiness``, asked over ``Health``)."""

    timeout = 2.0

    def __init__(self, supervisor: Any, reactor: Callable[[], Any]) -> None:
        self.supervisor = supervisor
        self._reactor = reactor

    def _ask(self, worker: Any) -> "Deferred[Tuple[bool, str]]":
        d = worker.control.callRemote(Health)
        d.addTimeout(self.timeout, self._reactor())
        return d.addCallbacks(lambda answer: (bool(answer["ready"]), str(answer["why"])),
                              lambda failure: (False, "not answering"))

    def __call__(self) -> "Deferred[Tuple[bool, str]]":
        if self.supervisor.stopping:
            return succeed((False, "draining"))
        workers = _ready_workers(self.supervisor)
        if not workers:
            return succeed((False, "starting"))

        def judged(answers: List[Tuple[bool, str]]) -> Tuple[bool, str]:
            if any(ready for ready, _why in answers):
                return True, "ready"
            return False, answers[0][1]  # e.g. "broker down" on every worker

        return gatherResults([self._ask(w) for w in workers]).addCallback(judged)
