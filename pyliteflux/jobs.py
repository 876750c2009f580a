"""Background jobs: work queued by a handler, started after its response.

``request.bg.add(func, *args, **kwargs)`` collects jobs; the adapter hands
them to the server's ``JobRunner`` once the response is written. Plain
functions run on the runner's own bounded thread pool (``deferToThreadPool``),
coroutine functions on the reactor. Every job runs in a fresh context, so its
``g`` is its own. A failing job is logged and affects nothing else.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from .core.context import new_context
from .core.errors import ServiceUnavailable

__all__ = ["BackgroundTasks", "JobRunner", "JobStats"]

Job = Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]

_log = Logger(namespace="pyliteflux.background")


class BackgroundTasks:
    """The jobs one request queued (``request.bg``)."""

    __slots__ = ("_jobs", "_runner")

    def __init__(self, runner: Optional["JobRunner"] = None) -> None:
        self._jobs: List[Job] = []
        self._runner = runner

    def add(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue ``func(*args, **kwargs)`` to run after the response is sent."""
        if not callable(func):
            raise TypeError(f"background job must be callable, got {func!r}")
        if self._runner is not None:
            self._runner.check_capacity(len(self._jobs) + 1)
        self._jobs.append((func, args, kwargs))

    def take(self) -> List[Job]:
        """Remove and return the queued jobs (the adapter calls this once)."""
        jobs, self._jobs = self._jobs, []
        return jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def __bool__(self) -> bool:
        return bool(self._jobs)


class _DaemonThreadPool(ThreadPool):
    """A pool whose workers never keep the process alive past shutdown."""

    @staticmethod
    def threadFactory(*args: Any, **kwargs: Any) -> threading.Thread:  # type: ignore[override]
        thread = threading.Thread(*args, **kwargs)
        thread.daemon = True
        return thread


class JobStats:
    """Counters of a runner; ``queued`` waits for a thread, ``running`` runs."""

    __slots__ = ("queued", "running", "done", "failed", "rejected")

    def __init__(self) -> None:
        self.queued = self.running = self.done = self.failed = self.rejected = 0

    def as_dict(self) -> Dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"JobStats({self.as_dict()})"


class JobRunner:
    """Runs background jobs on a bounded thread pool (or the reactor for coroutines).

    ``pool`` may be given (tests pass a synchronous one); otherwise the
    runner makes its own with ``threads`` workers when started.
    """

    def __init__(
        self,
        reactor: Any = None,
        threads: int = 10,
        max_queued: int = 10000,
        pool: Any = None,
    ) -> None:
        self._reactor = reactor
        self.threads = threads
        self.max_queued = max_queued
        self._pool = pool
        self._own_pool = pool is None
        self._lock = threading.Lock()
        self.stats = JobStats()
        self._inflight: Set[Deferred[Any]] = set()
        self.accepting = True
        #: when set, ``submit`` hands every job to it instead of running it
        #: (``pyliteflux.testing``'s synchronous or capturing jobs)
        self.interceptor: Optional[Callable[..., Deferred[Any]]] = None

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self.accepting = True
        if self._pool is None:
            self._pool = _DaemonThreadPool(0, self.threads, name="pyliteflux-jobs")
        if self._own_pool and not self._pool.started:
            self._pool.start()

    def stop(self, timeout: float = 5.0) -> Deferred[List[str]]:
        """Refuse new jobs, wait up to ``timeout`` s for queued and running ones.

        Fires with the names of the jobs abandoned (empty if all finished).
        """
        self.accepting = False
        pending = list(self._inflight)
        result: Deferred[List[str]] = Deferred()

        def finish(_: Any = None) -> None:
            if result.called:
                return
            if timer is not None and timer.active():
                timer.cancel()
            abandoned = [getattr(d, "_job_name", "?") for d in self._inflight]
            if abandoned:
                _log.warn("shutdown: abandoned {count} background job(s): {names}",
                          count=len(abandoned), names=", ".join(abandoned))
            elif self._own_pool and self._pool is not None and self._pool.started:
                self._pool.stop()
            result.callback(abandoned)

        timer = None
        if not pending:
            finish()
            return result
        timer = self.reactor.callLater(timeout, finish)
        DeferredList(pending, consumeErrors=True).addBoth(finish)
        return result

    # -- submission ------------------------------------------------------------

    def check_capacity(self, extra: int = 1) -> None:
        """Raise ``ServiceUnavailable`` if ``extra`` more jobs cannot be taken."""
        if not self.accepting:
            self.stats.rejected += extra
            raise ServiceUnavailable("server is shutting down; background jobs refused")
        if self.stats.queued + extra > self.max_queued:
            self.stats.rejected += extra
            raise ServiceUnavailable("background job queue is full")

    def submit_all(self, jobs: List[Job]) -> None:
        for func, args, kwargs in jobs:
            self.submit(func, *args, **kwargs)

    def start_after(self, request: Any) -> None:
        """Start the jobs a request queued (``request.bg``), once its response
        is out: every adapter calls this at that moment."""
        bg = request._bg
        if bg:
            self.submit_all(bg.take())

    def submit(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Start a job now; the Deferred fires when it ends (never errbacks)."""
        if self.interceptor is not None:
            return self.interceptor(func, *args, **kwargs)
        name = getattr(func, "__qualname__", repr(func))
        ctx = new_context()
        if inspect.iscoroutinefunction(func):
            self.stats.running += 1
            try:
                d = ctx.run(lambda: Deferred.fromCoroutine(func(*args, **kwargs)))
            except BaseException:
                d = Deferred()
                d.errback(Failure())
        else:
            if self._pool is None:
                self.start()
            with self._lock:
                self.stats.queued += 1
            d = deferToThreadPool(self.reactor, self._pool, self._run_in_thread,
                                  ctx, func, args, kwargs)
        d._job_name = name  # type: ignore[attr-defined]
        self._inflight.add(d)
        d.addCallbacks(self._succeeded, self._failed, errbackArgs=(name,))
        d.addBoth(self._forget, d)
        return d

    def _run_in_thread(self, ctx: Any, func: Callable[..., Any], args: Tuple[Any, ...],
                       kwargs: Dict[str, Any]) -> Any:
        with self._lock:
            self.stats.queued -= 1
            self.stats.running += 1
        return ctx.run(func, *args, **kwargs)

    def _succeeded(self, result: Any) -> None:
        with self._lock:
            self.stats.running -= 1
            self.stats.done += 1

    def _failed(self, failure: Failure, name: str) -> None:
        with self._lock:
            self.stats.running -= 1
            self.stats.failed += 1
        _log.failure("background job {name} failed", failure=failure, name=name)

    def _forget(self, result: Any, d: Deferred[Any]) -> Any:
        self._inflight.discard(d)
        return result

    @property
    def idle(self) -> bool:
        return not self._inflight

    def wait_idle(self) -> Deferred[Any]:
        """A Deferred that fires when every job submitted so far has ended."""
        if not self._inflight:
            return succeed(None)
        return DeferredList(list(self._inflight), consumeErrors=True)
