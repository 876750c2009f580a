"""What the push hub talks to: push targets, push formats and backends.

A **push target** is one long-lived connection that can receive pushes — a
keep-alive TCP client today, a WebSocket client or an SSE subscriber later.
It names its **push format**, the exact bytes it wants for one push (a JSON
line, an XML line, an SSE event ...), so that the hub encodes a message once
per format, not once per client. A **push backend** carries pushes and
presence beyond this process (the in-process ``LocalBackend`` carries none).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, FrozenSet, Optional, Protocol, Set, runtime_checkable

from twisted.internet.defer import Deferred

from ..core.codec import data_to_xml, dumps_json_line

__all__ = ["PushTarget", "PushBackend", "TopicsMixin", "encode_push", "register_push_format",
           "PUSH_FORMATS"]


@runtime_checkable
class PushTarget(Protocol):
    """One connection the hub can push to."""

    #: unique while open (TCP: ``"host:port"``)
    client_id: str
    #: what carries it, for logs and metrics: ``"tcp"``, ``"websocket"``, ``"sse"``
    transport_name: str

    @property
    def push_format(self) -> str:
        """A key of ``PUSH_FORMATS``: the bytes this target wants per push."""

    @property
    def topics(self) -> FrozenSet[str]:
        """The topics it is subscribed to."""

    def send_push(self, payload: bytes) -> bool:
        """Send one encoded push; False if the target is gone (or was just
        disconnected for being too far behind)."""


class PushBackend(Protocol):
    """Carries pushes and presence between the nodes of a cluster.

    The hub delivers to its own targets itself and tells the backend what
    happened locally (``joined`` ... ``unsubscribed``) and what must travel
    (``forward_*``); a backend hands pushes that arrive for this node to
    ``hub.deliver``.
    """

    node_id: str

    @property
    def up(self) -> bool:
        """Whether it can reach the other nodes now (always True when local)."""

    def attach(self, hub: Any) -> None:
        """Called once by the hub it serves, when the hub is made."""

    def start(self, hub: Any) -> Optional[Deferred[Any]]: ...

    def stop(self) -> Optional[Deferred[Any]]: ...

    def joined(self, target: PushTarget) -> None: ...

    def left(self, target: PushTarget) -> None: ...

    def subscribed(self, target: PushTarget, topic: str) -> None: ...

    def unsubscribed(self, target: PushTarget, topic: str) -> None: ...

    def forward_client(self, client_id: str, message: Any) -> None:
        """A push for a client this node does not hold."""

    def forward_topic(self, topic: str, message: Any) -> None:
        """A topic push, for the other nodes' subscribers."""

    def forward_broadcast(self, message: Any) -> None:
        """A broadcast, for the other nodes' targets."""

    def presence(self, topic: Optional[str] = None) -> Deferred[Dict[str, str]]:
        """``{client_id: node_id}`` of the cluster (or of a topic's subscribers)."""


# -- push formats ---------------------------------------------------------------------

Encoder = Callable[[Any, Optional[str]], bytes]


def encode_push(message: Any, data_type: str, topic: Optional[str] = None) -> bytes:
    """One push, without framing: ``{"type": "push", ["topic": T,] "data": m}``
    as JSON, or ``<push [topic="T"]>…</push>`` for XML clients."""
    if data_type == "xml":
        return data_to_xml("push", message, {"topic": topic} if topic is not None else None)
    if topic is None:
        return dumps_json_line({"type": "push", "data": message})
    return dumps_json_line({"type": "push", "topic": topic, "data": message})


#: format name -> encoder(message, topic) of the exact bytes a target sends
PUSH_FORMATS: Dict[str, Encoder] = {
    "json-line": lambda message, topic: encode_push(message, "json", topic) + b"\n",
    "xml-line": lambda message, topic: encode_push(message, "xml", topic) + b"\n",
}


def register_push_format(name: str, encoder: Encoder) -> None:
    """Add a push format (an adapter does this once, at import)."""
    PUSH_FORMATS[name] = encoder


# -- the subscribe/unsubscribe/topics of §12, for every kind of target --------------------

_NO_TOPICS: FrozenSet[str] = frozenset()


class TopicsMixin:
    """``subscribe``/``unsubscribe``/``topics`` for a push target, kept by the
    hub (the one owner of who is subscribed to what). The target needs a
    ``hub`` attribute; the set is made on the first subscription only, so an
    idle connection costs nothing for it."""

    hub: Any
    _topics: Optional[Set[str]] = None

    @property
    def topics(self) -> FrozenSet[str]:
        return frozenset(self._topics) if self._topics else _NO_TOPICS

    def subscribe(self, topic: str) -> None:
        """Receive the pushes of ``topic`` (ValueError beyond
        ``max_topics_per_connection``, or for a topic that is not a non-empty str)."""
        self.hub.subscribe(self, topic)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (nothing happens if not subscribed)."""
        self.hub.unsubscribe(self, topic)
