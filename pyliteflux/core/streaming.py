"""Streaming a ``StreamResponse`` body with Twisted's producer/consumer model.

How a stream is driven
----------------------
``StreamProducer`` is registered on the ``twisted.web`` request as a *push*
producer. Twisted pauses it when the client stops reading (the transport's
write buffer passes its high-water mark) and resumes it when the buffer
drains, so a slow reader never makes the server hold more than about one
transport buffer plus one chunk of a stream in memory.

The body may be a generator or any iterator, an async generator (or other
async iterator), or an iterator that yields Deferreds (or coroutines) of
chunks. Chunks are ``bytes`` (or ``bytearray``/``memoryview``) or ``str``,
which is UTF-8 encoded; empty chunks and ``None`` are skipped (an empty
HTTP/1.1 chunk would end the body), so a sync generator can pause without
blocking with ``yield deferLater(reactor, 1, lambda: None)``. Twisted writes the body with chunked transfer encoding
for HTTP/1.1 clients, each chunk as it is produced.

Blocking iterators: the decision
--------------------------------
Sync iterators are advanced **on the reactor thread**, at most
``chunks_per_turn`` items and ``turn_budget`` seconds per reactor turn, so a
fast stream does not starve other connections. Running them on the reactor
is what makes ordinary generators safe and cheap: they may touch ``g``,
call Twisted APIs and build Deferreds, and there is no thread hop per chunk.
A file reader yielding 8-64 KiB chunks blocks the reactor for one ``read``
at a time — microseconds from the page cache (see ``docs/streaming.md`` for
the measured figures) — which is fine.

An iterator that really blocks (``time.sleep``, a network client, a slow
disk) must not run on the reactor: wrap it in ``in_thread(iterable)``, which
advances it in a thread pool, one item at a time (no read-ahead, so
backpressure still holds). A sync step that takes longer than
``slow_step_warning`` seconds is logged once per generator function, naming
``in_thread``. Async generators are the other non-blocking option.

Disconnects and errors
----------------------
When the client goes away the iterator is closed (``close()`` or
``aclose()``), so its ``finally`` runs. If a step is in flight at that
moment (an async generator's ``__anext__`` awaiting something, a Deferred
the iterator yielded, a thread step), that step is cancelled first and the
iterator is closed once it has settled — an async generator cannot be
``aclose()``-d while it is running. Nothing is written after the request
finished or the connection was lost, and a disconnect is not logged as an
error. An exception from the iterator is logged once; if nothing was sent
yet the client gets a 500, otherwise the connection is closed without the
terminating chunk, so the client sees a truncated (failed) body.
"""

from __future__ import annotations

import contextvars
import inspect
import time
from typing import Any, Callable, Optional

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .errors import internal_error_line
from .responses import StreamResponse

__all__ = [
    "StreamProducer",
    "stream",
]

_log = Logger(namespace="pyliteflux.streaming")


class _End:
    """Sentinel: the iterator is exhausted."""

    def __repr__(self) -> str:
        return "<end of stream>"


_END = _End()
_NOTHING = object()
_warned_blocking: set = set()  # generator code objects already reported as blocking


def _chunk_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if chunk is None:  # e.g. ``yield deferLater(reactor, 1, lambda: None)``: a pause
        return b""
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"stream chunks must be bytes, str or None, got {type(chunk).__name__}")


def _run(ctx: Optional[contextvars.Context], f: Callable[..., Any], *args: Any) -> Any:
    return f(*args) if ctx is None else ctx.run(f, *args)


async def _anext(iterator: Any) -> Any:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _END


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _consume_cancel(failure: Failure) -> None:
    failure.trap(CancelledError)


class _Source:
    """Any supported iterable behind one interface: ``step()`` and ``close()``.

    ``step()`` returns a chunk, ``_END``, or a Deferred of either (it may
    raise, or the Deferred may fail, with the iterator's error). ``close()``
    cancels a step in flight, closes the iterator once that step has settled
    (``aclose()`` on a running async generator raises RuntimeError) and
    returns a Deferred that fires when the iterator is closed.
    """

    def __init__(self, iterable: Any, context: Optional[contextvars.Context] = None) -> None:
        self.is_async = hasattr(iterable, "__anext__") or hasattr(iterable, "__aiter__")
        if self.is_async:
            self.iterator: Any = (iterable if hasattr(iterable, "__anext__")
                                  else iterable.__aiter__())
        else:
            self.iterator = iter(iterable)
        self.context = context
        self.pending: Optional[Deferred[Any]] = None
        self.closed = False
        self._closed_d: Optional[Deferred[None]] = None

    def step(self) -> Any:
        if self.is_async:
            return self._track(_run(self.context, Deferred.fromCoroutine,
                                    _anext(self.iterator)))
        try:
            item = _run(self.context, next, self.iterator)
        except StopIteration:
            return _END
        if isinstance(item, Deferred):
            return self._track(item)
        if inspect.iscoroutine(item):
            return self._track(_run(self.context, Deferred.fromCoroutine, _await(item)))
        return item

    def _track(self, d: Deferred[Any]) -> Deferred[Any]:
        self.pending = d
        d.addBoth(self._settled, d)
        return d

    def _settled(self, result: Any, d: Deferred[Any]) -> Any:
        if self.pending is d:
            self.pending = None
        if self.closed:
            self._close_now()
        return result

    def close(self) -> Deferred[None]:
        if self._closed_d is not None:
            return self._closed_d
        self.closed = True
        self._closed_d = Deferred()
        pending = self.pending
        if pending is not None and not pending.called:
            pending.cancel()  # usually settles at once, which closes via _settled
            if self.pending is pending:
                return self._closed_d  # still running: closed when it settles
        self._close_now()
        return self._closed_d

    def _close_now(self) -> None:
        done = self._closed_d
        if done is None or done.called or self.pending is not None:
            return
        try:
            if self.is_async:
                aclose = getattr(self.iterator, "aclose", None)
                result = (_run(self.context, Deferred.fromCoroutine, _await(aclose()))
                          if aclose is not None else None)
            else:
                close = getattr(self.iterator, "close", None)
                result = _run(self.context, close) if close is not None else None
        except Exception:
            _log.failure("error while closing stream {iterator!r}", iterator=self.iterator)
            done.callback(None)
            return
        if isinstance(result, Deferred):
            result.addErrback(lambda f: _log.failure(
                "error while closing stream {iterator!r}", failure=f, iterator=self.iterator))
            result.addBoth(lambda _: done.callback(None))
        else:
            done.callback(None)


@implementer(IPushProducer)
class StreamProducer:
    """Writes a ``StreamResponse``'s chunks to a ``twisted.web`` request.

    ``finished`` fires (with None, never an error) when the stream is over —
    completed, failed or abandoned by the client — and its iterator closed.
    """

    #: most chunks written per reactor turn before yielding to other work
    chunks_per_turn = 16
    #: most seconds spent producing per reactor turn
    turn_budget = 0.01
    #: a sync step slower than this is logged (once per stream)
    slow_step_warning = 0.1

    def __init__(self, request: Any, response: StreamResponse, reactor: Any,
                 context: Optional[contextvars.Context] = None) -> None:
        self._request = request
        self._reactor = reactor
        self._source = _Source(response.iterable, context)
        self._paused = False
        self._scheduled: Any = None
        self._done = False
        self.produced = 0  #: chunks written, for tests and metrics
        self.bytes_written = 0
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
        self._end(write_end=False)

    # -- driving ------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        request = self._request
        request.registerProducer(self, True)
        channel = getattr(request, "channel", None)
        if getattr(channel, "_waitingForTransport", False):
            self._paused = True  # the transport is full already; it resumes us
        request.notifyFinish().addErrback(self._lost)
        self._pump()
        return self.finished

    def _first_warning(self) -> bool:
        """Warn about a blocking iterator once per generator function, not per request."""
        iterator = self._source.iterator
        key = getattr(iterator, "gi_code", None) or type(iterator)
        if key in _warned_blocking:
            return False
        _warned_blocking.add(key)
        return True

    def _lost(self, failure: Failure) -> None:
        self._end(write_end=False)

    def _schedule(self) -> None:
        if (self._scheduled is None and self._source.pending is None
                and not self._done and not self._paused):
            self._scheduled = self._reactor.callLater(0, self._pump)

    def _pump(self) -> None:
        self._scheduled = None
        deadline = time.monotonic() + self.turn_budget
        for _ in range(self.chunks_per_turn):
            if self._paused or self._done or self._source.pending is not None:
                return
            began = time.monotonic()
            try:
                item = self._source.step()
            except Exception:
                self._failed(Failure())
                return
            now = time.monotonic()
            if now - began > self.slow_step_warning and self._first_warning():
                _log.warn("stream iterator {iterator!r} blocked the reactor for {seconds:.3f}s "
                          "in one step; wrap it with pyliteflux.streaming.in_thread() or use "
                          "an async generator", iterator=self._source.iterator,
                          seconds=now - began)
            if isinstance(item, Deferred):
                item.addCallbacks(self._got, self._failed)
                return
            if not self._got(item, schedule=False):
                return
            if now > deadline:
                break
        self._schedule()

    def _got(self, item: Any, schedule: bool = True) -> bool:
        """Write one produced item; False when the stream ended here."""
        if self._done:
            return False
        if item is _END:
            self._end(write_end=True)
            return False
        try:
            data = _chunk_bytes(item)
        except TypeError:
            self._failed(Failure())
            return False
        if data:
            request = self._request
            if request.finished or getattr(request, "_disconnected", False):
                self._end(write_end=False)
                return False
            self.produced += 1
            self.bytes_written += len(data)
            request.write(data)  # may call pauseProducing (or even stopProducing)
        if schedule:
            self._schedule()
        return not self._done

    def _failed(self, failure: Failure) -> None:
        if self._done:
            return  # e.g. the CancelledError of a step we cancelled on disconnect
        request = self._request
        _log.failure("stream for {uri} failed; closing it", failure=failure,
                     uri=getattr(request, "uri", b"?").decode("ascii", "replace"))
        if not getattr(request, "startedWriting", True) and not request.finished:
            # Nothing sent yet: the status can still say what happened.
            request.setResponseCode(500)
            request.responseHeaders.setRawHeaders(b"Content-Type", [b"application/json"])
            body = internal_error_line()
            request.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % len(body)])
            self._end(write_end=False)
            request.write(body)
            request.finish()
            return
        # The status line is gone already: the honest signal left is to cut the
        # connection without the terminating chunk, so the client sees an error.
        self._end(write_end=False)
        transport = getattr(getattr(request, "channel", None), "transport", None)
        if transport is not None:
            transport.loseConnection()

    def _end(self, write_end: bool) -> None:
        if self._done:
            return
        self._done = True
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        closed = self._source.close()
        request = self._request
        if getattr(request, "producer", None) is self:
            try:
                request.unregisterProducer()
            except Exception:  # pragma: no cover - the channel is gone already
                pass
        if write_end and not request.finished and not getattr(request, "_disconnected", False):
            request.finish()
        closed.addBoth(lambda _: self.finished.callback(None))


def stream(request: Any, response: StreamResponse, reactor: Any,
           context: Optional[contextvars.Context] = None) -> Deferred[None]:
    """Start streaming ``response`` to ``request``; fires when the stream is over."""
    return StreamProducer(request, response, reactor, context).start()
