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

Server-sent events
------------------
``sse_event`` formats one event safely (data with CR/LF becomes several
``data:`` lines; ``event``/``id`` with line breaks are rejected), and
``SSEStream`` / ``sse_response`` wrap an iterable of events with a heartbeat
comment sent whenever the stream is idle for ``heartbeat`` seconds: Twisted
turns its idle timeout off while a response is being produced, so the
heartbeat write is what detects a dead client.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import re
import time
from typing import Any, Callable, Iterable, List, Mapping, Optional, Union

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .responses import HeadersLike, StreamResponse

__all__ = [
    "StreamProducer",
    "stream",
    "in_thread",
    "ThreadedIterator",
    "sse_event",
    "SSEStream",
    "sse_response",
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
            body = b'{"error": "Internal Server Error"}'
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


# -- blocking iterators ------------------------------------------------------------


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


# -- server-sent events --------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(name: str, value: Any) -> str:
    text = str(value)
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"SSE {name} must not contain CR, LF or NUL: {text!r}")
    return text


def sse_event(
    data: Any = None,
    event: Optional[str] = None,
    id: Optional[Union[str, int]] = None,
    retry: Optional[int] = None,
    comment: Optional[str] = None,
) -> str:
    """One server-sent event, framed so that no value can forge another event.

    ``data`` is a str (bytes are UTF-8 decoded; a dict or list is sent as
    JSON); each line of it — split at CRLF, CR or LF, exactly as the
    browser's parser does — becomes its own ``data:`` line. ``event`` and
    ``id`` are single-line: a CR, LF (or, for ids, NUL) in them is a
    ``ValueError``. ``retry`` is the reconnection delay in milliseconds, a
    non-negative int. ``comment`` lines start with ``:`` and are ignored by
    clients. The result ends with the blank line that dispatches the event.
    """
    lines: List[str] = []
    if comment is not None:
        lines.extend(": " + line if line else ":" for line in _LINE_BREAK.split(str(comment)))
    if event is not None:
        lines.append("event: " + _field("event", event))
    if id is not None:
        lines.append("id: " + _field("id", id))
    if retry is not None:
        if type(retry) is not int or retry < 0:
            raise ValueError(f"SSE retry must be a non-negative int (milliseconds), got {retry!r}")
        lines.append(f"retry: {retry}")
    if data is not None:
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data).decode("utf-8")
        elif isinstance(data, (dict, list)):
            data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        else:
            data = str(data)
        lines.extend("data: " + line for line in _LINE_BREAK.split(data))
    if not lines:
        raise ValueError("an SSE event needs data, event, id, retry or a comment")
    return "\n".join(lines) + "\n\n"


def _as_sse(item: Any) -> Any:
    if isinstance(item, Mapping):
        return sse_event(**item)
    return item  # str/bytes: already framed (e.g. by sse_event)


class SSEStream:
    """An iterable of events as an SSE body, with a heartbeat when idle.

    Items of ``events`` (a generator, iterator, async generator or an
    iterator of Deferreds) are either text already framed — typically made
    by ``sse_event`` — or a mapping of ``sse_event``'s arguments
    (``{"data": ..., "event": ...}``). Whenever the next event takes longer
    than ``heartbeat`` seconds a ``: heartbeat`` comment is sent, so proxies
    keep the connection and a dead client is noticed by the failing write.
    ``heartbeat=None`` (or 0) turns it off.
    """

    def __init__(self, events: Any, heartbeat: Optional[float] = 15.0, reactor: Any = None,
                 comment: str = "heartbeat") -> None:
        self._source = _Source(events)
        self._heartbeat = heartbeat or None
        self._reactor = reactor
        self._ping = sse_event(comment=comment)
        self._done = False
        self._timer: Any = None
        self._waiter: Optional[Deferred[Any]] = None
        self._step: Optional[Deferred[Any]] = None
        self._ready: Any = _NOTHING
        self._closed = False
        self.heartbeats = 0  #: heartbeat comments sent

    def __iter__(self) -> SSEStream:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        waiter: Deferred[Any] = Deferred(self._waiter_cancelled)
        if self._ready is not _NOTHING:
            # the source produced while nobody was waiting (just after a heartbeat)
            ready, self._ready = self._ready, _NOTHING
            self._deliver(waiter, ready)
            return waiter
        if self._step is None:
            item = self._source.step()  # errors propagate to the producer
            if item is _END:
                self._done = True
                raise StopIteration
            if not isinstance(item, Deferred):
                return _as_sse(item)
            self._waiter = waiter
            self._step = item
            item.addBoth(self._step_settled)  # may fire the waiter at once
        else:
            self._waiter = waiter
        if self._heartbeat is not None and not waiter.called:
            reactor = self._reactor
            if reactor is None:
                from twisted.internet import reactor as global_reactor

                reactor = self._reactor = global_reactor
            self._timer = reactor.callLater(self._heartbeat, self._beat)
        return waiter

    def _step_settled(self, result: Any) -> None:
        self._step = None
        self._cancel_timer()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.called:
            self._deliver(waiter, result)
        elif self._closed:
            if isinstance(result, Failure) and not result.check(CancelledError):
                _log.failure("SSE event source failed", failure=result)
        else:
            self._ready = result  # handed out by the next __next__
        return None

    def _deliver(self, waiter: Deferred[Any], result: Any) -> None:
        if isinstance(result, Failure):
            waiter.errback(result)
            return
        if result is _END:
            self._done = True
            waiter.callback(b"")  # skipped; the next step raises StopIteration
            return
        try:
            text = _as_sse(result)
        except Exception:
            waiter.errback(Failure())
            return
        waiter.callback(text)

    def _waiter_cancelled(self, waiter: Deferred[Any]) -> None:
        self.close()  # the stream was abandoned while waiting for an event

    def _beat(self) -> None:
        self._timer = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.called:
            self.heartbeats += 1
            waiter.callback(self._ping)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def close(self) -> Deferred[None]:
        """Stop heartbeats and close the event source (its ``finally`` runs)."""
        self._done = self._closed = True
        self._cancel_timer()
        self._waiter = None
        self._ready = _NOTHING
        return self._source.close()


def sse_response(
    events: Any,
    heartbeat: Optional[float] = 15.0,
    headers: HeadersLike = None,
    status: int = 200,
    reactor: Any = None,
) -> StreamResponse:
    """A ``text/event-stream`` ``StreamResponse`` of ``SSEStream(events, heartbeat)``.

    Adds ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (so nginx
    does not buffer the stream) unless ``headers`` sets them.
    """
    merged = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            for known in list(merged):
                if known.lower() == str(name).lower():
                    del merged[known]
            merged[name] = value
    return StreamResponse(SSEStream(events, heartbeat, reactor),
                          content_type="text/event-stream; charset=utf-8",
                          headers=merged, status=status)
