"""Pushes and presence between worker processes, over Twisted's AMP.

With ``workers > 1`` and the local push backend, each worker's hub uses a
``RelayBackend``: what happens to its targets (joined, left, subscribed,
unsubscribed) and the pushes it cannot finish alone (a client it does not
hold, a topic, a broadcast) go to the supervisor over the worker's control
connection (a socket pair made by the supervisor, see
``service.supervisor``); the supervisor (``push.fanout``) sends each push
on to the workers that need it, which ``Deliver`` it to their own targets.
Presence is answered by the supervisor, which keeps the directory of every
worker's clients and topics.

The wire format is AMP's (``twisted.protocols.amp``): the commands below
are the whole protocol. A push's message travels as JSON (``BigJSON``,
spread over several AMP values when longer than one may be).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

__all__ = ["BigJSON", "Ready", "Joined", "Left", "Subscribed", "Unsubscribed", "Push",
           "Deliver", "Presence", "Scrape", "Health", "Stop", "RelayBackend", "WorkerControl", "QuietAMP"]

_log = Logger(namespace="pyliteflux.push")

#: bytes of one AMP value (``amp.MAX_VALUE_LENGTH`` is 65535)
_CHUNK = 60000


class BigJSON(amp.Argument):
    """Any JSON value, of any size: one AMP key per 60 kB chunk
    (``name``, ``name.1``, ``name.2`` ...)."""

    def toBox(self, name: bytes, strings: Dict[bytes, bytes], objects: Dict[str, Any],
              proto: Any) -> None:
        data = json.dumps(objects[name.decode("ascii")], separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
        strings[name] = data[:_CHUNK]
        for i, start in enumerate(range(_CHUNK, len(data), _CHUNK), 1):
            strings[b"%s.%d" % (name, i)] = data[start:start + _CHUNK]

    def fromBox(self, name: bytes, strings: Dict[bytes, bytes], objects: Dict[str, Any],
                proto: Any) -> None:
        parts = [strings.pop(name)]
        i = 1
        while b"%s.%d" % (name, i) in strings:
            parts.append(strings.pop(b"%s.%d" % (name, i)))
            i += 1
        objects[name.decode("ascii")] = json.loads(b"".join(parts))


# -- worker -> supervisor ---------------------------------------------------------------

class Ready(amp.Command):
    """The worker listens on every adopted port and serves."""

    arguments = [(b"pid", amp.Integer())]
    response = []  # type: ignore[var-annotated]


class Joined(amp.Command):
    arguments = [(b"client_id", amp.Unicode())]
    requiresAnswer = False


class Left(amp.Command):
    arguments = [(b"client_id", amp.Unicode())]
    requiresAnswer = False


class Subscribed(amp.Command):
    arguments = [(b"client_id", amp.Unicode()), (b"topic", amp.Unicode())]
    requiresAnswer = False


class Unsubscribed(amp.Command):
    arguments = [(b"client_id", amp.Unicode()), (b"topic", amp.Unicode())]
    requiresAnswer = False


class Push(amp.Command):
    """A push for the other workers: ``kind`` is ``client``, ``topic`` or
    ``broadcast``; ``target`` the client id or topic ("" for a broadcast)."""

    arguments = [(b"kind", amp.Unicode()), (b"target", amp.Unicode()),
                 (b"message", BigJSON())]
    requiresAnswer = False


class Presence(amp.Command):
    """``{client_id: node_id}`` of every worker (``topic`` "" for all)."""

    arguments = [(b"topic", amp.Unicode())]
    response = [(b"presence", BigJSON())]


# -- supervisor -> worker ---------------------------------------------------------------

class Deliver(amp.Command):
    """A push from another worker, for this worker's own targets."""

    arguments = [(b"kind", amp.Unicode()), (b"target", amp.Unicode()),
                 (b"message", BigJSON())]
    requiresAnswer = False


class Scrape(amp.Command):
    """This worker's metrics in the Prometheus text format (SPEC §16: the
    supervisor's ``metrics_endpoint`` merges every worker's); "" without."""

    arguments = []  # type: ignore[var-annotated]
    response = [(b"text", BigJSON())]


class Health(amp.Command):
    """Whether this worker should get traffic (``observability.Readiness``:
    serving, and its push broker up), for the supervisor's ``/readyz``."""

    arguments = []  # type: ignore[var-annotated]
    response = [(b"ready", amp.Boolean()), (b"why", amp.Unicode())]


class Stop(amp.Command):
    """Shut down gracefully (SPEC §11), then exit."""

    arguments = []  # type: ignore[var-annotated]
    requiresAnswer = False


# -- the worker's side --------------------------------------------------------------------

class RelayBackend:
    """The push backend of a worker: the supervisor is the rest of the cluster.

    ``control`` is the worker's ``WorkerControl`` once connected; while it is
    not (or after the supervisor is gone) pushes for other workers are
    dropped and counted as ``broker_down``, and presence is local.
    """

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.hub: Any = None
        self.control: Optional["WorkerControl"] = None
        self._down_logged = False

    @property
    def up(self) -> bool:
        return self.control is not None and bool(self.control.connected)

    def attach(self, hub: Any) -> None:
        self.hub = hub

    def start(self, hub: Any) -> None:
        self.hub = hub
        for client_id, target in list(hub.connections.items()):  # a restart: say who is here
            self._send(Joined, client_id=client_id)
            for topic in target.topics:
                self._send(Subscribed, client_id=client_id, topic=topic)

    def stop(self) -> None:
        return None

    def _send(self, command: Any, **arguments: Any) -> bool:
        control = self.control
        if control is None or not control.connected:
            if not self._down_logged:
                self._down_logged = True
                _log.warn("no supervisor connection: pushes to other workers are dropped")
            return False
        control.callRemote(command, **arguments)
        return True

    def joined(self, target: Any) -> None:
        self._send(Joined, client_id=target.client_id)

    def left(self, target: Any) -> None:
        self._send(Left, client_id=target.client_id)

    def subscribed(self, target: Any, topic: str) -> None:
        self._send(Subscribed, client_id=target.client_id, topic=topic)

    def unsubscribed(self, target: Any, topic: str) -> None:
        self._send(Unsubscribed, client_id=target.client_id, topic=topic)

    def _forward(self, kind: str, target: str, message: Any) -> None:
        try:
            sent = self._send(Push, kind=kind, target=target, message=message)
        except (TypeError, ValueError) as exc:  # not JSON: it cannot leave this worker
            _log.warn("push not relayed to other workers: {why}", why=exc)
            sent = False
        if not sent and self.hub is not None:
            self.hub.stats.drop("broker_down")

    def forward_client(self, client_id: str, message: Any) -> None:
        self._forward("client", client_id, message)

    def forward_topic(self, topic: str, message: Any) -> None:
        self._forward("topic", topic, message)

    def forward_broadcast(self, message: Any) -> None:
        self._forward("broadcast", "", message)

    def presence(self, topic: Optional[str] = None) -> Deferred[Dict[str, str]]:
        control = self.control
        if control is None or not control.connected:
            return succeed(self.hub.local_presence(topic) if self.hub is not None else {})
        d = control.callRemote(Presence, topic=topic or "")
        return d.addCallback(lambda answer: dict(answer["presence"]))

    def deliver(self, kind: str, target: str, message: Any) -> int:
        """A push relayed from another worker: to this worker's targets."""
        hub = self.hub
        if hub is None:
            return 0
        if kind == "client":
            return int(hub.deliver(message, client_id=target))
        if kind == "topic":
            return int(hub.deliver(message, topic=target))
        return int(hub.deliver(message))


class QuietAMP(amp.AMP):
    """AMP without its info line for every connection made and lost (the
    supervisor logs its workers' starts and ends itself, by number and pid)."""

    def makeConnection(self, transport: Any) -> None:
        amp.BinaryBoxProtocol.makeConnection(self, transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        amp.BinaryBoxProtocol.connectionLost(self, reason)
        self.transport = None


class WorkerControl(QuietAMP):
    """A worker's end of its control connection to the supervisor.

    It delivers relayed pushes, stops the worker on ``Stop``, and calls
    ``on_lost`` when the connection closes (the supervisor is gone: the
    worker shuts down gracefully rather than live on as an orphan).
    """

    def __init__(self, backend: Optional[RelayBackend], on_stop: Callable[[], Any],
                 on_lost: Callable[[], Any]) -> None:
        super().__init__()
        self.backend = backend
        self._on_stop = on_stop
        self._on_lost = on_lost
        self.connected = False
        #: this worker's exposition (``ServerMetrics.exposition``) for ``Scrape``
        self.metrics: Optional[Callable[[], bytes]] = None
        #: this worker's readiness check, ``() -> (ready, why)``, for ``Health``
        self.health: Optional[Callable[[], Any]] = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self.connected = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        super().connectionLost(reason)
        self._on_lost()

    @Deliver.responder
    def _deliver(self, kind: str, target: str, message: Any) -> Dict[str, Any]:
        if self.backend is not None:
            self.backend.deliver(kind, target, message)
        return {}

    @Scrape.responder
    def _scrape(self) -> Dict[str, Any]:
        metrics = self.metrics
        return {"text": metrics().decode("utf-8") if metrics is not None else ""}

    @Health.responder
    def _health(self) -> Dict[str, Any]:
        ready, why = self.health() if self.health is not None else (False, "starting")
        return {"ready": bool(ready), "why": str(why)}

    @Stop.responder
    def _stop(self) -> Dict[str, Any]:
        self._on_stop()
        return {}
