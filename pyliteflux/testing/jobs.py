"""Background jobs under test: run at once, or captured for the test to run."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from twisted.internet.defer import Deferred, succeed

from ..core.context import new_context
from ..jobs import JobRunner

__all__ = ["SyncJobs"]


class SyncJobs:
    """Replaces a server's job submission: run jobs at once, or capture them.

    ``mode="sync"`` runs each job as soon as it is submitted (after the
    response is written), each in a fresh ``g``; ``mode="capture"`` keeps
    them in ``captured`` until ``run_all()``.
    """

    def __init__(self, runner: JobRunner, mode: str = "sync") -> None:
        if mode not in ("sync", "capture"):
            raise ValueError("mode is 'sync' or 'capture'")
        self.mode = mode
        self.captured: List[Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]] = []
        self.results: List[Deferred[Any]] = []
        self._runner = runner
        runner.interceptor = self._submit

    def _submit(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        if self.mode == "capture":
            self.captured.append((func, args, kwargs))
            return succeed(None)
        return self._run(func, args, kwargs)

    def _run(self, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Deferred[Any]:
        ctx = new_context()
        stats = self._runner.stats
        stats.running += 1
        try:
            result = ctx.run(func, *args, **kwargs)
            if hasattr(result, "__await__"):
                d: Deferred[Any] = ctx.run(Deferred.fromCoroutine, result)
            else:
                d = succeed(result)
        except BaseException as exc:
            d = Deferred()
            d.errback(exc)

        def done(result: Any) -> Any:
            stats.running -= 1
            stats.done += 1
            return result

        def failed(failure: Any) -> Any:
            stats.running -= 1
            stats.failed += 1
            return failure

        d.addCallbacks(done, failed)
        self.results.append(d)
        return d

    def run_all(self) -> Deferred[List[Any]]:
        """Run the captured jobs now, in order; fires with their results."""
        jobs, self.captured = self.captured, []
        out: List[Any] = []
        chain: Deferred[Any] = succeed(None)
        for func, args, kwargs in jobs:
            chain.addCallback(lambda _, f=func, a=args, k=kwargs: self._run(f, a, k))  # type: ignore[call-overload]
            chain.addCallback(out.append)
        return chain.addCallback(lambda _: out)
