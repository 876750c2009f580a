"""The in-process push backend: a node alone, with nothing to forward to.

It is the default (``push_backend = "local"``): every push is delivered by
the hub to this process's targets, presence is this process's registry,
and a push to a client this process does not hold reaches nobody (logged
and counted as ``unknown_client``).
"""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

__all__ = ["LocalBackend", "default_node_id"]

_log = Logger(namespace="pyliteflux.push")


def default_node_id() -> str:
    """``"<hostname>-<pid>"``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class LocalBackend:
    """No other nodes: forwards nothing, presence is local."""

    up = True

    def __init__(self, node_id: Optional[str] = None) -> None:
        self.node_id = node_id or default_node_id()
        self.hub: Any = None

    def attach(self, hub: Any) -> None:
        self.hub = hub

    def start(self, hub: Any) -> None:
        self.hub = hub

    def stop(self) -> None:
        return None

    def joined(self, target: Any) -> None:
        pass

    def left(self, target: Any) -> None:
        pass

    def subscribed(self, target: Any, topic: str) -> None:
        pass

    def unsubscribed(self, target: Any, topic: str) -> None:
        pass

    def forward_client(self, client_id: str, message: Any) -> None:
        _log.warn("push to unknown client {client_id!r}", client_id=client_id)
        if self.hub is not None:
            self.hub.stats.drop("unknown_client")

    def forward_topic(self, topic: str, message: Any) -> None:
        pass

    def forward_broadcast(self, message: Any) -> None:
        pass

    def presence(self, topic: Optional[str] = None) -> Deferred[Dict[str, str]]:
        return succeed(self.hub.local_presence(topic) if self.hub is not None else {})
