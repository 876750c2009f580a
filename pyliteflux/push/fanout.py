"""The supervisor's side of the push relay: who is where, and who needs a push.

The supervisor holds one ``SupervisorControl`` (AMP, see ``push.relay``)
per worker process and one ``Directory`` for all of them. The directory
learns from ``Joined``/``Left``/``Subscribed``/``Unsubscribed`` which
worker holds which client and which workers have subscribers of a topic,
so that a push travels only where it is needed:

- to a client: only to the worker holding it;
- to a topic: only to the workers with a subscriber of it;
- a broadcast: to every other worker, once.

The worker a push came from has already delivered it to its own targets.
Presence (``{client_id: node_id}``) is answered from the directory.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Set

from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from .relay import (
    Deliver,
    Joined,
    Left,
    Presence,
    Push,
    QuietAMP,
    Ready,
    Stop,
    Subscribed,
    Unsubscribed,
)

__all__ = ["Directory", "SupervisorControl"]

_log = Logger(namespace="pyliteflux.push")


class Directory:
    """Every worker's clients and topics, as the workers report them."""

    def __init__(self) -> None:
        #: client_id -> the control connection of the worker holding it
        self.clients: Dict[str, "SupervisorControl"] = {}
        #: topic -> {control: number of its subscribers there}
        self.topics: Dict[str, Dict["SupervisorControl", Set[str]]] = {}
        self.controls: List["SupervisorControl"] = []
        #: relayed pushes by kind, and pushes to clients nobody holds
        self.relayed: Dict[str, int] = {"client": 0, "topic": 0, "broadcast": 0}
        self.unknown_clients = 0

    # -- membership ----------------------------------------------------------------------

    def add(self, control: "SupervisorControl") -> None:
        self.controls.append(control)

    def remove(self, control: "SupervisorControl") -> None:
        """A worker's connection closed: forget everything it held."""
        if control in self.controls:
            self.controls.remove(control)
        for client_id in list(control.clients):
            if self.clients.get(client_id) is control:
                del self.clients[client_id]
        for topic in list(self.topics):
            holders = self.topics[topic]
            holders.pop(control, None)
            if not holders:
                del self.topics[topic]
        control.clients.clear()

    def joined(self, control: "SupervisorControl", client_id: str) -> None:
        self.clients[client_id] = control
        control.clients.add(client_id)

    def left(self, control: "SupervisorControl", client_id: str) -> None:
        control.clients.discard(client_id)
        if self.clients.get(client_id) is control:
            del self.clients[client_id]
        for topic in list(self.topics):
            self.unsubscribed(control, client_id, topic)

    def subscribed(self, control: "SupervisorControl", client_id: str, topic: str) -> None:
        self.topics.setdefault(topic, {}).setdefault(control, set()).add(client_id)

    def unsubscribed(self, control: "SupervisorControl", client_id: str, topic: str) -> None:
        holders = self.topics.get(topic)
        if holders is None:
            return
        members = holders.get(control)
        if members is None:
            return
        members.discard(client_id)
        if not members:
            del holders[control]
            if not holders:
                del self.topics[topic]

    # -- pushes and presence ---------------------------------------------------------------

    def push(self, origin: Optional["SupervisorControl"], kind: str, target: str,
             message: Any) -> int:
        """Send a push on to the workers that need it; how many were sent it."""
        if kind == "client":
            holder = self.clients.get(target)
            if holder is None or holder is origin:
                self.unknown_clients += 1
                _log.warn("push to unknown client {client_id!r}", client_id=target)
                return 0
            recipients = [holder]
        elif kind == "topic":
            recipients = [c for c in self.topics.get(target, ()) if c is not origin]
        else:
            recipients = [c for c in self.controls if c is not origin]
        self.relayed[kind] = self.relayed.get(kind, 0) + 1
        for control in recipients:
            control.deliver(kind, target, message)
        return len(recipients)

    def presence(self, topic: Optional[str] = None) -> Dict[str, str]:
        if topic:
            return {client_id: control.node_id
                    for control, members in self.topics.get(topic, {}).items()
                    for client_id in members}
        return {client_id: control.node_id for client_id, control in self.clients.items()}


class SupervisorControl(QuietAMP):
    """The supervisor's end of one worker's control connection.

    It is the producer of its transport, so it knows when the worker stops
    reading (stopped with SIGSTOP, or wedged in a blocking call): pushes for
    it then queue in the supervisor only up to ``max_backlog`` bytes; beyond
    that they are dropped (``dropped``, logged once per episode) rather than
    growing the supervisor without bound. ``Stop`` is never dropped.
    """

    #: bytes of pushes queued for a worker that is not reading, at most
    max_backlog = 16 * 1024 * 1024

    def __init__(self, directory: Directory, node_id: str,
                 on_ready: Callable[["SupervisorControl", int], Any] = lambda c, pid: None,
                 on_lost: Callable[["SupervisorControl"], Any] = lambda c: None) -> None:
        super().__init__()
        self.directory = directory
        self.node_id = node_id
        self.clients: Set[str] = set()
        self.connected = False
        self._on_ready = on_ready
        self._on_lost = on_lost
        #: pushes not sent to this worker because it was not reading
        self.dropped = 0
        self._paused = False
        self._backlog = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.connected = True
        transport: Any = self.transport
        transport.registerProducer(self, True)
        self.directory.add(self)

    # (IPushProducer: the transport's buffer towards the worker is full / drained)
    def pauseProducing(self) -> None:
        self._paused, self._backlog = True, 0

    def resumeProducing(self) -> None:
        if self.dropped and self._backlog > self.max_backlog:
            _log.warn("worker {node} reads again; {n} pushes to it were dropped",
                      node=self.node_id, n=self.dropped)
        self._paused, self._backlog = False, 0

    def stopProducing(self) -> None:
        self._paused = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self.directory.remove(self)
        super().connectionLost(reason)
        self._on_lost(self)

    def deliver(self, kind: str, target: str, message: Any) -> None:
        if not self.connected:
            return
        if self._paused:  # only then is the size worth measuring
            if self._backlog > self.max_backlog:
                self.dropped += 1
                return
            self._backlog += len(json.dumps(message, ensure_ascii=False)) + len(target) + 64
            if self._backlog > self.max_backlog:
                _log.warn("worker {node} is not reading: dropping pushes to it until it does",
                          node=self.node_id)
        self.callRemote(Deliver, kind=kind, target=target, message=message)

    def stop_worker(self) -> bool:
        """Ask the worker to shut down gracefully; False if not connected."""
        if not self.connected:
            return False
        self.callRemote(Stop)
        return True

    @Ready.responder
    def _ready(self, pid: int) -> Dict[str, Any]:
        self._on_ready(self, pid)
        return {}

    @Joined.responder
    def _joined(self, client_id: str) -> Dict[str, Any]:
        self.directory.joined(self, client_id)
        return {}

    @Left.responder
    def _left(self, client_id: str) -> Dict[str, Any]:
        self.directory.left(self, client_id)
        return {}

    @Subscribed.responder
    def _subscribed(self, client_id: str, topic: str) -> Dict[str, Any]:
        self.directory.subscribed(self, client_id, topic)
        return {}

    @Unsubscribed.responder
    def _unsubscribed(self, client_id: str, topic: str) -> Dict[str, Any]:
        self.directory.unsubscribed(self, client_id, topic)
        return {}

    @Push.responder
    def _push(self, kind: str, target: str, message: Any) -> Dict[str, Any]:
        self.directory.push(self, kind, target, message)
        return {}

    @Presence.responder
    def _presence(self, topic: str) -> Dict[str, Any]:
        return {"presence": self.directory.presence(topic or None)}
