"""Streaming a ``StreamResponse`` body with Twisted's producer/consumer model.

The producer is registered on the request as a *push* producer: Twisted
pauses it when the client stops reading (the transport's buffer is full)
and resumes it when the buffer drains, so a slow reader never makes the
server hold more than about one transport buffer of a stream in memory.

Sync iterators are advanced on the reactor, at most ``chunks_per_turn``
items per reactor turn, so a long stream does not starve other
connections; a blocking iterator (a file reader) therefore blocks only for
one read of one chunk at a time. Async generators and iterators that yield
Deferreds are awaited between chunks. When the client goes away the
iterator is closed (``close()`` / ``aclose()``), so its ``finally`` runs.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .responses import StreamResponse

__all__ = ["StreamProducer"]

_log = Logger(namespace="pyliteflux.streaming")


def _chunk_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"stream chunks must be bytes or str, got {type(chunk).__name__}")


@implementer(IPushProducer)
class StreamProducer:
    """Writes a ``StreamResponse``'s chunks to a ``twisted.web`` request."""

    chunks_per_turn = 16

    def __init__(self, request: Any, response: StreamResponse, reactor: Any) -> None:
        self._request = request
        self._reactor = reactor
        iterable = response.iterable
        self._is_async = hasattr(iterable, "__anext__") or hasattr(iterable, "__aiter__")
        if self._is_async:
            self._iterator: Any = iterable.__aiter__() if not hasattr(iterable, "__anext__") else iterable
        else:
            self._iterator = iter(iterable)
        self._source = iterable
        self._paused = False
        self._waiting = False  # an async step is in flight
        self._scheduled: Any = None
        self._done = False
        self.produced = 0  # chunks written, for tests and metrics
        self.finished: Deferred[None] = Deferred()

    # -- IPushProducer ----------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        if self._done:
            return
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        """The client went away: close the iterator, write nothing more."""
        self._finish(close=True, write_end=False)

    # -- driving ------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        self._request.registerProducer(self, True)
        self._pump()
        return self.finished

    def _schedule(self) -> None:
        if self._scheduled is None and not self._waiting and not self._done:
            self._scheduled = self._reactor.callLater(0, self._pump)

    def _pump(self) -> None:
        self._scheduled = None
        count = 0
        while not self._paused and not self._done and not self._waiting:
            if count >= self.chunks_per_turn:
                self._schedule()
                return
            count += 1
            if self._is_async:
                self._waiting = True
                d = ensureDeferred(self._iterator.__anext__())
                d.addCallbacks(self._got_async, self._step_failed)
                return
            try:
                chunk = next(self._iterator)
            except StopIteration:
                self._finish(close=False, write_end=True)
                return
            except Exception:
                self._step_failed(Failure())
                return
            if isinstance(chunk, Deferred):
                self._waiting = True
                chunk.addCallbacks(self._got_deferred, self._step_failed)
                return
            self._write(chunk)

    def _got_async(self, chunk: Any) -> None:
        self._waiting = False
        self._write(chunk)
        self._schedule()

    def _got_deferred(self, chunk: Any) -> None:
        self._waiting = False
        self._write(chunk)
        self._schedule()

    def _write(self, chunk: Any) -> None:
        if self._done:
            return
        try:
            data = _chunk_bytes(chunk)
        except TypeError:
            self._step_failed(Failure())
            return
        if data:
            self.produced += 1
            self._request.write(data)

    def _step_failed(self, failure: Failure) -> None:
        self._waiting = False
        if failure.check(StopAsyncIteration):
            self._finish(close=False, write_end=True)
            return
        if self._done:
            return
        _log.failure("stream {request!r} failed; closing it", failure=failure,
                     request=self._request)
        # The status line is gone already: the honest signal left is to cut the
        # connection without the terminating chunk, so the client sees an error.
        self._finish(close=True, write_end=False)
        transport = getattr(self._request, "channel", None)
        transport = getattr(transport, "transport", None)
        if transport is not None:
            transport.loseConnection()

    def _finish(self, close: bool, write_end: bool) -> None:
        if self._done:
            return
        self._done = True
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        if close:
            self._close_source()
        request = self._request
        try:
            request.unregisterProducer()
        except Exception:  # already gone with the connection
            pass
        if write_end and not getattr(request, "_disconnected", False) and not request.finished:
            request.finish()
        self.finished.callback(None)

    def _close_source(self) -> None:
        source = self._iterator
        try:
            if self._is_async:
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    ensureDeferred(aclose()).addErrback(
                        lambda f: _log.failure("closing stream", failure=f))
            else:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
        except Exception:
            _log.failure("closing stream {source!r}", source=source)


def stream(request: Any, response: StreamResponse, reactor: Any) -> Optional[Deferred[None]]:
    """Start streaming ``response`` to ``request``; fires when the stream ends."""
    return StreamProducer(request, response, reactor).start()
