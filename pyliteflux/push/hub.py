"""The push hub: the one owner of who is connected, subscribed and where.

Adapters register their long-lived connections (push targets) here and
unregister them when they close; ``Server.push_message`` and the backends
ask the hub to deliver. Nothing else keeps a list of push targets.

Delivery encodes a message once per push format (``target.PUSH_FORMATS``)
and hands the bytes to each target; pushes for other nodes go to the
backend. Everything here runs on the reactor thread: ``push_message`` is
the thread-safe entry point.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Callable, Dict, Iterable, Optional, Set, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python import threadable

from ..core.errors import TopicError
from .local import LocalBackend
from .target import PUSH_FORMATS, PushBackend, PushTarget

__all__ = ["PushHub", "ConnectionRegistry", "PushStats"]

_log = Logger(namespace="pyliteflux.push")


class ConnectionRegistry(Dict[str, Any]):
    """Live mapping ``client_id -> push target`` (``server.connections``)."""

    def register(self, client_id: str, conn: Any) -> None:
        self[client_id] = conn

    def unregister(self, client_id: str, conn: Any) -> None:
        if self.get(client_id) is conn:
            del self[client_id]


class PushStats:
    """What the hub counted: messages by kind, deliveries by transport,
    drops by reason (the names of SPEC §16's labels)."""

    __slots__ = ("messages", "deliveries", "dropped")

    def __init__(self) -> None:
        self.messages: Dict[str, int] = {"client": 0, "topic": 0, "broadcast": 0}
        self.deliveries: Dict[str, int] = {}
        self.dropped: Dict[str, int] = {"unknown_client": 0, "slow_consumer": 0,
                                        "broker_down": 0}

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count


class PushHub:
    """Registry, topics and delivery for one server (one node)."""

    def __init__(self, backend: Optional[PushBackend] = None,
                 max_topics: Callable[[], int] = lambda: 100,
                 reactor: Callable[[], Any] = lambda: None) -> None:
        self.connections = ConnectionRegistry()
        self._subscribers: Dict[str, Set[Any]] = {}
        self.backend: PushBackend = backend if backend is not None else LocalBackend()
        self.backend.attach(self)
        self.stats = PushStats()
        self._max_topics = max_topics
        self._reactor = reactor

    @property
    def node_id(self) -> str:
        return self.backend.node_id

    # -- targets ---------------------------------------------------------------------

    def register(self, target: PushTarget) -> None:
        """A target is open: it receives pushes until ``unregister``."""
        self.connections.register(target.client_id, target)
        self.backend.joined(target)

    def use_backend(self, backend: PushBackend) -> None:
        """Carry pushes and presence with ``backend`` from now on (the server
        picks it from ``config.push_backend`` when its service starts)."""
        self.backend = backend
        backend.attach(self)

    def unregister(self, target: PushTarget) -> None:
        """A target closed: it leaves the registry and every topic, at once.

        ``backend.left`` is called while the target's topics are still
        listed (and counted by ``subscriber_count``), so a backend can tell
        which topics lose their last subscriber here."""
        registered = self.connections.get(target.client_id) is target
        if registered:
            del self.connections[target.client_id]
            self.backend.left(target)
        topics = getattr(target, "_topics", None)
        if topics:
            for topic in topics:
                subscribers = self._subscribers.get(topic)
                if subscribers is not None:
                    subscribers.discard(target)
                    if not subscribers:
                        del self._subscribers[topic]
            topics.clear()

    def subscribe(self, target: Any, topic: str) -> None:
        if not isinstance(topic, str) or not topic:
            raise TopicError(f"a topic is a non-empty str, got {topic!r}")
        topics = target._topics
        if topics is None:
            topics = target._topics = set()
        if topic in topics:
            return
        limit = self._max_topics()
        if len(topics) >= limit:
            raise TopicError(f"at most {limit} topics per connection "
                             "(max_topics_per_connection)")
        topics.add(topic)
        self._subscribers.setdefault(topic, set()).add(target)
        if self.connections.get(target.client_id) is target:
            self.backend.subscribed(cast(PushTarget, target), topic)

    def unsubscribe(self, target: Any, topic: str) -> None:
        topics = target._topics
        if not topics or topic not in topics:
            return
        topics.discard(topic)
        subscribers = self._subscribers.get(topic)
        if subscribers is not None:
            subscribers.discard(target)
            if not subscribers:
                del self._subscribers[topic]
        if self.connections.get(target.client_id) is target:
            self.backend.unsubscribed(cast(PushTarget, target), topic)

    def subscribers(self, topic: str) -> Set[Any]:
        """This node's targets subscribed to ``topic``."""
        return set(self._subscribers.get(topic, ()))

    def subscriber_count(self, topic: str) -> int:
        """How many of this node's targets are subscribed to ``topic``."""
        subscribers = self._subscribers.get(topic)
        return len(subscribers) if subscribers else 0

    def topics(self) -> Iterable[str]:
        """The topics this node has subscribers of."""
        return list(self._subscribers)

    # -- pushing -----------------------------------------------------------------------

    def push_message(self, message: Any, client_id: Optional[str] = None,
                     topic: Optional[str] = None) -> Any:
        """``push`` from any thread: on the reactor thread, the number of local
        targets reached; from another thread a ``concurrent.futures.Future``
        of it (the push runs on the reactor)."""
        if client_id is not None and topic is not None:
            raise ValueError("push_message takes client_id or topic, not both")
        if threadable.ioThread is None or threadable.isInIOThread():
            return self.push(message, client_id, topic)
        future: "concurrent.futures.Future[int]" = concurrent.futures.Future()

        def push() -> None:
            try:
                future.set_result(self.push(message, client_id, topic))
            except BaseException as exc:  # report to the caller, not the reactor
                future.set_exception(exc)

        self._reactor().callFromThread(push)
        return future

    def push(self, message: Any, client_id: Optional[str] = None,
             topic: Optional[str] = None) -> int:
        """Deliver here and forward to the other nodes; the number of this
        node's targets reached (0 for a client held elsewhere, or unknown)."""
        if client_id is not None:
            if topic is not None:
                raise ValueError("push_message takes client_id or topic, not both")
            self.stats.messages["client"] += 1
            target = self.connections.get(client_id)
            if target is not None:
                return self.deliver_many(message, (target,))
            self.backend.forward_client(client_id, message)
            return 0
        if topic is not None:
            self.stats.messages["topic"] += 1
            reached = self.deliver(message, topic=topic)
            self.backend.forward_topic(topic, message)
            return reached
        self.stats.messages["broadcast"] += 1
        reached = self.deliver(message)
        self.backend.forward_broadcast(message)
        return reached

    def deliver(self, message: Any, client_id: Optional[str] = None,
                topic: Optional[str] = None) -> int:
        """Deliver to this node's targets only: one client, a topic's
        subscribers, or all (what a backend calls for pushes from elsewhere)."""
        if client_id is not None:
            target = self.connections.get(client_id)
            return 0 if target is None else self.deliver_many(message, (target,))
        if topic is not None:
            return self.deliver_many(message, list(self._subscribers.get(topic, ())), topic)
        return self.deliver_many(message, list(self.connections.values()))

    def deliver_many(self, message: Any, targets: Iterable[Any],
                     topic: Optional[str] = None) -> int:
        """Encode once per push format, send to each target."""
        encoded: Dict[str, bytes] = {}
        deliveries = self.stats.deliveries
        reached = 0
        for target in targets:
            fmt = target.push_format
            payload = encoded.get(fmt)
            if payload is None:
                payload = encoded[fmt] = PUSH_FORMATS[fmt](message, topic)
            if target.send_push(payload):
                reached += 1
                name = target.transport_name
                deliveries[name] = deliveries.get(name, 0) + 1
        return reached

    def presence(self, topic: Optional[str] = None) -> Deferred[Dict[str, str]]:
        """``{client_id: node_id}`` of every live target of the cluster (or of
        ``topic``'s subscribers)."""
        return self.backend.presence(topic)

    def local_presence(self, topic: Optional[str] = None) -> Dict[str, str]:
        """This node's part of ``presence``."""
        node = self.node_id
        if topic is None:
            return dict.fromkeys(self.connections, node)
        return {t.client_id: node for t in self._subscribers.get(topic, ())}
