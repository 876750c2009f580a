"""The cluster's presence directory in Redis: who is connected, where.

Keys (``P`` is ``cluster_prefix``, ``N`` a node id, ``C`` a client id):

=====================  ======  =================================================
``P:nodes``            set     node ids that have announced themselves
``P:alive:N``          string  exists while node N refreshes it (PX presence_ttl)
``P:conns:N``          hash    C -> JSON list of C's topics, for N's clients
``P:clients``          hash    C -> "N [N2 ...]": where to send a push for C
=====================  ======  =================================================

A node writes its own entries as its clients come and go, refreshes
``P:alive:N`` every ``presence_ttl / 3`` and rewrites all its entries
whenever its Redis connection is (re)made — so a Redis restart, or a
partition that outlived the TTL, heals by itself. A node that dies
without saying so stops refreshing: its alive key expires, ``presence``
stops listing it at once, and the next living node's refresh removes its
entries (``CLEANUP``). Multi-key updates are small Lua scripts, so no
reader sees half of one.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Tuple

from twisted.internet.defer import Deferred, gatherResults

__all__ = ["PresenceKeys", "PresenceDirectory"]

# ``P:clients`` maps a client id to the space-separated ids of the nodes
# holding one: two nodes can see the same "host:port" (one host's clients
# reach two nodes from the same port, or a load balancer does), and one of
# them leaving must not make the other unreachable.
_NODES = """
local function add(key, c, node)
  local cur = redis.call('hget', key, c)
  if not cur then redis.call('hset', key, c, node) return end
  for n in string.gmatch(cur, '[^ ]+') do if n == node then return end end
  redis.call('hset', key, c, cur .. ' ' .. node)
end
local function remove(key, c, node)
  local cur = redis.call('hget', key, c)
  if not cur then return end
  local rest = {}
  for n in string.gmatch(cur, '[^ ]+') do if n ~= node then table.insert(rest, n) end end
  if #rest == 0 then redis.call('hdel', key, c)
  else redis.call('hset', key, c, table.concat(rest, ' ')) end
end
"""

#: KEYS conns, clients; ARGV client, node, topics
JOIN = _NODES + """
redis.call('hset', KEYS[1], ARGV[1], ARGV[3])
add(KEYS[2], ARGV[1], ARGV[2])
return 1
"""

#: KEYS conns, clients, nodes, alive; ARGV node, ttl_ms, C1, T1, C2, T2 ...
RESTORE = _NODES + """
redis.call('del', KEYS[1])
for i = 3, #ARGV, 2 do
  redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1])
  add(KEYS[2], ARGV[i], ARGV[1])
end
redis.call('set', KEYS[4], '1', 'px', ARGV[2])
redis.call('sadd', KEYS[3], ARGV[1])
return 1
"""

#: KEYS alive, nodes; ARGV node, ttl_ms -> 0 if the alive key had expired
REFRESH = """
local kept = redis.call('set', KEYS[1], '1', 'px', ARGV[2], 'xx')
redis.call('sadd', KEYS[2], ARGV[1])
if kept then return 1 end
return 0
"""

#: KEYS conns, clients; ARGV client, node
LEAVE = _NODES + """
redis.call('hdel', KEYS[1], ARGV[1])
remove(KEYS[2], ARGV[1], ARGV[2])
return 1
"""

#: KEYS conns, clients, nodes, alive; ARGV node, force -> clients removed (-1: alive)
CLEANUP = _NODES + """
if ARGV[2] ~= '1' and redis.call('exists', KEYS[4]) == 1 then return -1 end
local ids = redis.call('hkeys', KEYS[1])
for _, c in ipairs(ids) do remove(KEYS[2], c, ARGV[1]) end
redis.call('del', KEYS[1], KEYS[4])
redis.call('srem', KEYS[3], ARGV[1])
return #ids
"""


class PresenceKeys:
    """The names of the keys and channels under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes = f"{prefix}:nodes"
        self.clients = f"{prefix}:clients"
        self.broadcast = f"{prefix}:broadcast"
        self.topic_prefix = f"{prefix}:topic:"

    def alive(self, node: str) -> str:
        return f"{self.prefix}:alive:{node}"

    def conns(self, node: str) -> str:
        return f"{self.prefix}:conns:{node}"

    def node_channel(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    def topic_channel(self, topic: str) -> str:
        return self.topic_prefix + topic


def topics_json(topics: Iterable[str]) -> str:
    return json.dumps(sorted(topics))


class PresenceDirectory:
    """This node's side of the directory, over a txredisapi protocol.

    Every method takes the command protocol to use (the caller knows
    whether Redis is up) and returns its Deferred; none waits for another,
    and all go over one connection, so they apply in the order called.
    """

    def __init__(self, keys: PresenceKeys, node_id: str, ttl: float) -> None:
        self.keys = keys
        self.node_id = node_id
        self.ttl_ms = max(1, int(ttl * 1000))
        self._conns = keys.conns(node_id)
        self._alive = keys.alive(node_id)

    def joined(self, redis: Any, client_id: str, topics: Iterable[str]) -> Deferred[Any]:
        return redis.eval(JOIN, [self._conns, self.keys.clients],  # type: ignore[no-any-return]
                          [client_id, self.node_id, topics_json(topics)])

    def topics_changed(self, redis: Any, client_id: str,
                       topics: Iterable[str]) -> Deferred[Any]:
        return redis.hset(self._conns, client_id, topics_json(topics))  # type: ignore[no-any-return]

    def left(self, redis: Any, client_id: str) -> Deferred[Any]:
        return redis.eval(LEAVE, [self._conns, self.keys.clients],  # type: ignore[no-any-return]
                          [client_id, self.node_id])

    def restore(self, redis: Any, targets: Iterable[Tuple[str, Iterable[str]]]) -> Deferred[Any]:
        """Rewrite all of this node's entries (after every reconnect)."""
        args: List[Any] = [self.node_id, self.ttl_ms]
        for client_id, topics in targets:
            args += (client_id, topics_json(topics))
        k = self.keys
        return redis.eval(RESTORE, [self._conns, k.clients, k.nodes,  # type: ignore[no-any-return]
                                    self._alive], args)

    def refresh(self, redis: Any) -> Deferred[bool]:
        """Keep this node alive; fires False if it had expired (the caller
        must ``restore``: another node may have cleaned its entries up)."""
        d = redis.eval(REFRESH, [self._alive, self.keys.nodes], [self.node_id, self.ttl_ms])
        return d.addCallback(lambda kept: bool(kept))  # type: ignore[no-any-return]

    def cleanup(self, redis: Any, node: str, force: bool = False) -> Deferred[Any]:
        """Remove ``node``'s entries if its alive key is gone (or ``force``:
        this node leaving)."""
        k = self.keys
        return redis.eval(CLEANUP, [k.conns(node), k.clients,  # type: ignore[no-any-return]
                                    k.nodes, k.alive(node)], [node, "1" if force else "0"])

    def cleanup_dead(self, redis: Any) -> Deferred[Any]:
        """Run ``cleanup`` for every other node listed (the script itself
        leaves the living alone)."""
        def each(nodes: Any) -> Any:
            others = [n for n in (nodes or ()) if n != self.node_id]
            return gatherResults([self.cleanup(redis, n) for n in others])

        return redis.smembers(self.keys.nodes).addCallback(each)  # type: ignore[no-any-return]

    def locate(self, redis: Any, client_id: str) -> Deferred[List[str]]:
        """The nodes holding ``client_id`` (usually one; none: nobody)."""
        d = redis.hget(self.keys.clients, client_id)
        return d.addCallback(lambda v: v.split() if v else [])  # type: ignore[no-any-return]

    def presence(self, redis: Any, topic: Optional[str] = None) -> Deferred[Dict[str, str]]:
        """``{client_id: node}`` of every living node but this one."""
        k = self.keys

        def per_node(nodes: Any) -> Any:
            others = sorted(n for n in (nodes or ()) if n != self.node_id)
            asks: List[Deferred[Any]] = []
            for node in others:
                asks.append(redis.exists(k.alive(node)))
                asks.append(redis.hgetall(k.conns(node)))
            return gatherResults(asks).addCallback(merge, others)

        def merge(answers: List[Any], nodes: List[str]) -> Dict[str, str]:
            out: Dict[str, str] = {}
            for i, node in enumerate(nodes):
                alive, conns = answers[2 * i], answers[2 * i + 1]
                if not alive or not isinstance(conns, dict):
                    continue
                for client_id, raw in conns.items():
                    if topic is None or _has_topic(raw, topic):
                        out[client_id] = node
            return out

        return redis.smembers(k.nodes).addCallback(per_node)  # type: ignore[no-any-return]


def _has_topic(raw: Any, topic: str) -> bool:
    try:
        topics = json.loads(raw)
    except (TypeError, ValueError):
        return False
    return isinstance(topics, list) and topic in topics
