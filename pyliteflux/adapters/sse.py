"""SSE push targets (SPEC §14): ``GET sse_path`` as an event stream the hub pushes to.

The request is an ordinary HTTP request through the pipeline, so HTTP
middlewares run on it (authentication applies). When the app has no route
of its own at ``sse_path`` (``SSERequest.find_handler`` asks the router
first: an app's route wins), the built-in handler answers with a
``StreamResponse`` whose body is an ``SSESubscriber``:

- first ``event: hello`` with ``data: {"client_id": "sse:host:port"}``;
- then one ``data:`` event per push, holding the push line's JSON;
- a ``: heartbeat`` comment whenever it was idle for ``heartbeat`` s (15).

The subscriber is registered in ``server.connections`` (transport
``"sse"``) when the stream starts, subscribed to each ``?topic=``, and
unregistered when the stream closes. Pushes wait in the subscriber while
the client does not read (Twisted pauses the stream); beyond
``max_output_buffer`` bytes the client is disconnected, as on TCP.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, List, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..core.codec import dumps_json_line
from ..core.errors import BadRequest, NotFound
from ..core.requests import HTTPRequest
from ..core.sse import sse_event, sse_response
from ..push.target import TopicsMixin, encode_push, register_push_format
from .common import AdapterContext

__all__ = ["SSEEndpoint", "SSERequest", "SSESubscriber"]

_log = Logger(namespace="pyliteflux.sse")
SSE_FORMAT = "sse"

register_push_format(SSE_FORMAT, lambda message, topic: (
    b"data: " + encode_push(message, "json", topic) + b"\n\n"))


class SSESubscriber(TopicsMixin):
    """One open event stream: a push target, and the stream's event source
    (an iterator of framed events, or Deferreds of the next one)."""

    transport_name = "sse"
    push_format = SSE_FORMAT

    def __init__(self, endpoint: "SSEEndpoint", raw: Any, client_id: str,
                 topics: List[str]) -> None:
        self.endpoint = endpoint
        self.hub = endpoint.context.hub
        self.raw = raw  # the twisted.web request
        self.client_id = client_id
        self._want_topics = topics
        self._max_output = endpoint.context.config.max_output_buffer
        self._queue: Deque[bytes] = deque()
        self._queued = 0
        self._waiter: Optional[Deferred[Any]] = None
        self._started = False
        self.closed = False
        self.registered = False

    # -- the event source -------------------------------------------------------------

    def __iter__(self) -> "SSESubscriber":
        return self

    def __next__(self) -> Any:
        if self.closed:
            raise StopIteration
        if not self._started:
            self._started = True
            self._open()
            return sse_event(event="hello", data=dumps_json_line({"client_id": self.client_id}))
        if self._queue:
            data = self._queue.popleft()
            self._queued -= len(data)
            return data
        waiter: Deferred[Any] = Deferred()
        self._waiter = waiter
        return waiter

    def _open(self) -> None:
        self.endpoint.streams[self.raw] = self
        self.hub.register(self)
        self.registered = True
        for topic in self._want_topics:
            self.subscribe(topic)

    def close(self) -> None:
        """The stream is over (finished, or the client went away)."""
        self.closed = True
        self._queue.clear()
        self._queued = 0
        self._waiter = None
        if self.endpoint.streams.get(self.raw) is self:
            del self.endpoint.streams[self.raw]
        if self.registered:
            self.registered = False
            self.hub.unregister(self)

    # -- the push target ----------------------------------------------------------------

    @property
    def pending_count(self) -> int:
        return len(self._queue)

    def send_push(self, payload: bytes) -> bool:
        if self.closed:
            return False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.callback(payload)
            return True
        self._queue.append(payload)
        self._queued += len(payload)
        if self._queued > self._max_output:
            _log.warn("disconnecting slow SSE client {client}: over {limit} bytes unsent",
                      client=self.client_id, limit=self._max_output)
            self.endpoint.context.hub.stats.drop("slow_consumer")
            self.abort()
            return False
        return True

    def end(self) -> None:
        """End the stream cleanly (shutdown): the body's last chunk is sent."""
        if self.closed:
            return
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(b"")  # an empty chunk (skipped); the next step ends the stream

    def abort(self) -> None:
        self.close()
        transport = getattr(self.raw, "transport", None)
        if transport is None:  # (the llhttp engine's request: its connection's)
            transport = getattr(getattr(self.raw, "channel", None), "transport", None)
        if transport is not None:
            getattr(transport, "abortConnection", transport.loseConnection)()


class SSEEndpoint:
    """The built-in handler for ``sse_path`` and the registry of open streams
    (for shutdown: ``say_goodbye`` ends them, ``abort`` cuts them)."""

    #: seconds of silence before a heartbeat comment
    heartbeat = 15.0

    def __init__(self, context: AdapterContext) -> None:
        self.context = context
        path = context.config.sse_path
        self.path: Optional[bytes] = path.encode("utf-8") if path else None
        #: twisted.web request -> its subscriber, while the stream is open
        self.streams: Dict[Any, SSESubscriber] = {}

    def handle(self, request: HTTPRequest) -> Any:
        """The built-in ``GET sse_path`` handler."""
        raw: Any = request.raw
        topics = request.query_list.get("topic", [])
        limit = self.context.config.max_topics_per_connection
        if len(set(topics)) > limit:
            raise BadRequest(f"at most {limit} topics per connection")
        if any(not t for t in topics):
            raise BadRequest("a topic is a non-empty string")
        host, port = request.client_address
        subscriber = SSESubscriber(self, raw, f"sse:{host}:{port}", topics)
        return sse_response(subscriber, heartbeat=self.heartbeat, reactor=self.context.reactor)

    def owns(self, raw: Any) -> bool:
        """Whether a twisted.web request is one of our open streams (long-lived:
        not 'in flight' for shutdown's drain)."""
        return raw in self.streams

    def open_count(self) -> int:
        return len(self.streams)

    def say_goodbye(self) -> int:
        streams = list(self.streams.values())
        for subscriber in streams:
            subscriber.end()
        return len(streams)

    def abort(self) -> List[str]:
        streams = list(self.streams.values())
        for subscriber in streams:
            subscriber.abort()
        return [f"sse {s.client_id}" for s in streams]


class SSERequest(HTTPRequest):
    """A request for ``sse_path``: the app's own route if it has one, else
    the built-in event stream (GET and HEAD)."""

    def __init__(self, raw: Any, jobs: Any, endpoint: SSEEndpoint) -> None:
        super().__init__(raw, jobs)
        self._endpoint = endpoint

    def find_handler(self, router: Any) -> Any:
        try:
            return super().find_handler(router)
        except NotFound:
            if self.method not in ("GET", "HEAD"):
                raise
            return self._endpoint.handle
