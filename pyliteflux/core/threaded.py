"""Blocking iterators for streams: advanced on a thread pool, one item at a time.

``in_thread(iterable)`` wraps an iterator that really blocks (``time.sleep``,
a network client, a slow disk) so a ``StreamResponse`` can use it without
blocking the reactor: each ``next()`` runs in the pool, with no read-ahead,
so backpressure still holds.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from .streaming import _END

__all__ = ["in_thread", "ThreadedIterator"]


class ThreadedIterator:
    """Advances a blocking iterator in a thread pool; yields Deferreds of its items.

    One item is fetched at a time, only when the stream asks for it, so
    backpressure still holds. ``close()`` closes the underlying iterator (in
    the pool, after a fetch that is still running finishes).
    """

    def __init__(self, iterable: Iterable[Any], reactor: Any = None, pool: Any = None) -> None:
        self._iterator = iter(iterable)
        self._reactor = reactor
        self._pool = pool
        self._running: Optional[Deferred[Any]] = None
        self._closed = False

    def _defer(self, f: Callable[..., Any]) -> Deferred[Any]:
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = self._reactor = global_reactor
        pool = self._pool if self._pool is not None else reactor.getThreadPool()
        return deferToThreadPool(reactor, pool, f)

    def _next(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            return _END

    def __iter__(self) -> ThreadedIterator:
        return self

    def __next__(self) -> Deferred[Any]:
        if self._closed:
            raise StopIteration
        d = self._defer(self._next)
        self._running = d
        out: Deferred[Any] = Deferred()

        def settled(result: Any) -> None:
            if self._running is d:
                self._running = None
            if out.called:  # cancelled meanwhile: nobody wants the result
                return
            if isinstance(result, Failure):
                out.errback(result)
            elif result is _END:
                self._closed = True
                out.callback(b"")  # skipped by the producer; the next step ends the stream
            else:
                out.callback(result)

        d.addBoth(settled)
        return out

    def close(self) -> Deferred[None]:
        self._closed = True
        close = getattr(self._iterator, "close", None)
        if close is None:
            return succeed(None)
        running = self._running
        if running is not None:
            done: Deferred[None] = Deferred()
            running.addBoth(lambda _: self._defer(close).chainDeferred(done))
            return done
        return self._defer(close)


def in_thread(iterable: Iterable[Any], reactor: Any = None, pool: Any = None) -> ThreadedIterator:
    """Wrap a blocking iterator so a ``StreamResponse`` advances it in a thread.

    ``StreamResponse(in_thread(file_reader()))``; ``pool`` defaults to the
    reactor's thread pool.
    """
    return ThreadedIterator(iterable, reactor, pool)
