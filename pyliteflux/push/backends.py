"""Which push backend a server uses: ``config.push_backend`` -> a backend.

``"local"`` is the in-process ``LocalBackend``; a ``redis://`` URL is the
``RedisBackend`` (imported only then: the local default needs no Redis
client installed and loads none).
"""

from __future__ import annotations

from typing import Any

from .local import LocalBackend, default_node_id
from .relay import RelayBackend
from .target import PushBackend

__all__ = ["backend_for"]


def backend_for(config: Any, current: Any = None, reactor: Any = None) -> PushBackend:
    """The backend ``config`` asks for: ``current`` if it already is that
    one (same kind, URL, node and prefix), else a new one."""
    url = config.push_backend
    node_id = config.node_id or getattr(current, "node_id", None) or default_node_id()
    if url == "local":
        if isinstance(current, (LocalBackend, RelayBackend)) and current.node_id == node_id:
            return current  # a worker's relay is its "local" backend (SPEC §15)
        return LocalBackend(node_id)
    from .redis import RedisBackend

    if (isinstance(current, RedisBackend) and current.url == url
            and current.node_id == node_id and current.keys.prefix == config.cluster_prefix
            and current.presence_ttl == config.presence_ttl):
        return current
    return RedisBackend(url, node_id, config.cluster_prefix, config.presence_ttl, reactor)
