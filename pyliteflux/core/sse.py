"""Server-sent events: safe event framing and an event stream with heartbeats.

``sse_event`` formats one event safely (data with CR/LF becomes several
``data:`` lines; ``event``/``id`` with line breaks are rejected), and
``SSEStream`` / ``sse_response`` wrap an iterable of events with a heartbeat
comment sent whenever the stream is idle for ``heartbeat`` seconds: Twisted
turns its idle timeout off while a response is being produced, so the
heartbeat write is what detects a dead client.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Mapping, Optional, Union

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .responses import HeadersLike, StreamResponse
from .streaming import _END, _NOTHING, _Source

__all__ = ["sse_event", "SSEStream", "sse_response"]

_log = Logger(namespace="pyliteflux.streaming")


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
