"""The Redis push backend (SPEC §13): nodes sharing one Redis form a cluster.

Channels (``P`` is ``cluster_prefix``):

- ``P:node:N`` — pushes for clients held by node N (each node listens to
  its own): a push to one client is published once, to its node only,
  found in the presence directory (``redis_presence``) and cached;
- ``P:topic:T`` — a node listens while it has a subscriber of T, so Redis
  hands a topic push only to nodes with a subscriber;
- ``P:broadcast`` — every node listens.

Each message is ``{"o": origin node, "m": message}`` as JSON (plus
``"c": client_id`` on a node channel); anything else published there is
logged (rate-limited) and dropped. Delivery is at-most-once; pushes from
one node keep their order: all go out over one connection, in the order
``push_message`` was called (a push waiting for a directory look-up holds
back the ones after it).

Redis down: the server serves on; what would cross nodes is dropped and
counted (``hub.stats.dropped["broker_down"]``), logged once per outage;
both connections retry every <= 2 s and, once back, re-subscribe and
rewrite this node's presence. ``presence()`` then answers with this
node's part only.
"""

from __future__ import annotations

import collections
import json
from typing import Any, Deque, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger

from ..core.codec import dumps_json
from .local import default_node_id
from .redis_link import RedisAddress, RedisLink, parse_redis_url
from .redis_presence import PresenceDirectory, PresenceKeys

__all__ = ["RedisBackend"]

_log = Logger(namespace="pyliteflux.push.redis")


class RedisBackend:
    """Pushes and presence across the nodes on one Redis (a ``PushBackend``)."""

    #: seconds a client -> node look-up is remembered
    cache_ttl = 5.0
    cache_size = 100_000
    #: at most one "garbage on our channels" log line per this many seconds
    garbage_log_interval = 10.0

    def __init__(self, url: str, node_id: Optional[str] = None, prefix: str = "pyliteflux",
                 presence_ttl: float = 30.0, reactor: Any = None) -> None:
        self.url = url
        self.address: RedisAddress = parse_redis_url(url)
        self.node_id = node_id or default_node_id()
        self.keys = PresenceKeys(prefix)
        self.presence_ttl = presence_ttl
        self.directory = PresenceDirectory(self.keys, self.node_id, presence_ttl)
        self.hub: Any = None
        self._reactor = reactor
        self.commands: Optional[RedisLink] = None
        self.channels: Optional[RedisLink] = None
        self._node_channel = self.keys.node_channel(self.node_id).encode()
        self._broadcast = self.keys.broadcast.encode()
        self._topic_prefix = self.keys.topic_prefix.encode()
        self._topics: set = set()  # topic channels we are subscribed to (or will be)
        self._cache: Dict[str, Tuple[List[str], float]] = {}
        self._lookups: Dict[str, Deferred[Any]] = {}
        self._queue: Deque[List[Any]] = collections.deque()  # [channels or None, payload]
        self._refresh_call: Any = None
        self._outage = False
        self._outage_drops = 0
        self.garbage = 0
        self._garbage_logged_at: Optional[float] = None

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor as global_reactor

            self._reactor = global_reactor
        return self._reactor

    @property
    def up(self) -> bool:
        """Both Redis connections are usable."""
        return bool(self.commands and self.commands.up and self.channels and self.channels.up)

    def __repr__(self) -> str:
        return f"<RedisBackend {self.node_id} on {self.address}>"

    # -- lifecycle -----------------------------------------------------------------

    def attach(self, hub: Any) -> None:
        self.hub = hub

    def start(self, hub: Any) -> None:
        """Connect (in the background: the server serves whether Redis is there or not)."""
        self.hub = hub
        if self.commands is not None:
            return
        self.commands = RedisLink(self.address, "command", self.reactor,
                                  self._commands_ready, self._down)
        self.channels = RedisLink(self.address, "channels", self.reactor,
                                  self._channels_ready, self._down, self._received)
        _log.info("node {node} joining the cluster {prefix!r} on {address}",
                  node=self.node_id, prefix=self.keys.prefix, address=self.address)
        self.commands.start()
        self.channels.start()
        self._refresh_call = self.reactor.callLater(self.presence_ttl / 3, self._refresh)

    def stop(self) -> Deferred[Any]:
        """Leave presence (when Redis is there) and close both connections."""
        if self._refresh_call is not None and self._refresh_call.active():
            self._refresh_call.cancel()
        self._refresh_call = None
        commands, channels = self.commands, self.channels
        if commands is None or channels is None:
            return succeed(None)
        self.commands = self.channels = None
        leaving: Deferred[Any] = succeed(None)
        if commands.up:
            leaving = self.directory.cleanup(commands.protocol, self.node_id, force=True)
            leaving.addErrback(lambda f: _log.info("leaving presence: {e}",
                                                   e=f.getErrorMessage()))
        return leaving.addBoth(lambda _: gatherResults([commands.stop(), channels.stop()]))

    # -- connections come and go -------------------------------------------------------

    def _commands_ready(self, redis: Any) -> None:
        self._restore(redis)
        self._flush()
        self._maybe_back()

    def _channels_ready(self, proto: Any) -> None:
        topics = set(self.hub.topics()) if self.hub is not None else set()
        self._topics = topics
        names = [self.keys.node_channel(self.node_id), self.keys.broadcast]
        names += [self.keys.topic_channel(t) for t in topics]
        for i in range(0, len(names), 1000):
            proto.send("SUBSCRIBE", *names[i:i + 1000])
        self._maybe_back()

    def _maybe_back(self) -> None:
        if self._outage and self.up:
            self._outage = False
            _log.info("Redis {address} is reachable again: subscriptions and presence "
                      "restored ({n} cross-node pushes dropped meanwhile)",
                      address=self.address, n=self._outage_drops)

    def _down(self) -> None:
        self._cache.clear()
        self._lookups.clear()
        dropped = sum(1 for item in self._queue if item[1] is not None)
        self._queue.clear()
        if dropped:
            self._dropped_down(dropped)
        if not self._outage:
            self._outage = True
            self._outage_drops = 0
            _log.warn("Redis {address} is unreachable: serving on, cross-node pushes are "
                      "dropped until it is back (retrying every <= 2 s)", address=self.address)

    def _restore(self, redis: Any) -> None:
        hub = self.hub
        targets = [(c, t.topics) for c, t in list(hub.connections.items())] if hub else []
        self.directory.restore(redis, targets).addErrback(self._failed, "restoring presence")

    def _refresh(self) -> None:
        self._refresh_call = self.reactor.callLater(self.presence_ttl / 3, self._refresh)
        if self.channels is not None and self.channels.up and self.hub is not None:
            self._reconcile_topics()
        redis = self._redis()
        if redis is None:
            return

        def refreshed(kept: bool) -> Any:
            if not kept:  # expired meanwhile (a long stall): entries may be gone
                self._restore(redis)
            return self.directory.cleanup_dead(redis)

        d = self.directory.refresh(redis).addCallback(refreshed)
        d.addErrback(self._failed, "refreshing presence")

    def _reconcile_topics(self) -> None:
        wanted = set(self.hub.topics())
        for topic in wanted - self._topics:
            self._subscribe_topic(topic)
        for topic in self._topics - wanted:
            self._unsubscribe_topic(topic)

    def _failed(self, failure: Any, what: str) -> None:
        _log.info("Redis {address}: {what} failed: {error}", address=self.address,
                  what=what, error=failure.getErrorMessage())

    def _redis(self) -> Any:
        link = self.commands
        return link.protocol if link is not None and link.up else None

    # -- what happens on this node -------------------------------------------------------

    def joined(self, target: Any) -> None:
        redis = self._redis()
        if redis is not None:
            self.directory.joined(redis, target.client_id, target.topics).addErrback(
                self._failed, "joining")

    def left(self, target: Any) -> None:
        # called while the target is still counted among its topics' subscribers
        self._cache.pop(target.client_id, None)
        for topic in target.topics:
            if self.hub.subscriber_count(topic) <= 1:
                self._unsubscribe_topic(topic)
        redis = self._redis()
        if redis is not None:
            self.directory.left(redis, target.client_id).addErrback(self._failed, "leaving")

    def subscribed(self, target: Any, topic: str) -> None:
        if topic not in self._topics:
            self._subscribe_topic(topic)
        self._topics_changed(target)

    def unsubscribed(self, target: Any, topic: str) -> None:
        if self.hub.subscriber_count(topic) == 0:
            self._unsubscribe_topic(topic)
        self._topics_changed(target)

    def _topics_changed(self, target: Any) -> None:
        redis = self._redis()
        if redis is not None:
            self.directory.topics_changed(redis, target.client_id, target.topics).addErrback(
                self._failed, "updating topics")

    def _subscribe_topic(self, topic: str) -> None:
        self._topics.add(topic)
        link = self.channels
        if link is not None and link.up:
            link.protocol.send("SUBSCRIBE", self.keys.topic_channel(topic))

    def _unsubscribe_topic(self, topic: str) -> None:
        if topic not in self._topics:
            return
        self._topics.discard(topic)
        link = self.channels
        if link is not None and link.up:
            link.protocol.send("UNSUBSCRIBE", self.keys.topic_channel(topic))

    # -- pushes leaving this node ----------------------------------------------------------

    def forward_client(self, client_id: str, message: Any) -> None:
        payload = self._envelope(message, client_id)
        if payload is None:
            return
        if self._redis() is None:
            self._dropped_down()
            return
        now = self.reactor.seconds()
        cached = self._cache.get(client_id)
        if cached is not None and cached[1] > now and client_id not in self._lookups:
            self._send(cached[0], payload)
            return
        item: List[Any] = [None, payload]  # channels filled in by the look-up
        self._queue.append(item)
        lookup = self._lookups.get(client_id)
        if lookup is None:
            lookup = self._lookups[client_id] = self.directory.locate(self._redis(), client_id)
            lookup.addCallbacks(self._located, self._lookup_failed,
                                callbackArgs=(client_id,), errbackArgs=(client_id,))
        lookup.addCallback(self._resolved, item, client_id)

    def _located(self, nodes: List[str], client_id: str) -> Any:
        self._lookups.pop(client_id, None)
        channels = [self.keys.node_channel(n) for n in nodes if n != self.node_id]
        if not channels:
            return None
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[client_id] = (channels, self.reactor.seconds() + self.cache_ttl)
        return channels

    def _lookup_failed(self, failure: Any, client_id: str) -> bool:
        self._lookups.pop(client_id, None)
        self._failed(failure, "looking up a client")
        return False

    def _resolved(self, channels: Any, item: List[Any], client_id: str) -> Any:
        if channels is False:  # Redis failed us: counted as a broker drop
            item[1] = None
            self._dropped_down()
        elif channels is None:
            item[1] = None  # nobody holds it: dropped, in its place in the queue
            _log.warn("push to unknown client {client_id!r}", client_id=client_id)
            if self.hub is not None:
                self.hub.stats.drop("unknown_client")
        else:
            item[0] = channels
        self._flush()
        return channels

    def forward_topic(self, topic: str, message: Any) -> None:
        payload = self._envelope(message)
        if payload is not None:
            self._send([self.keys.topic_channel(topic)], payload)

    def forward_broadcast(self, message: Any) -> None:
        payload = self._envelope(message)
        if payload is not None:
            self._send([self.keys.broadcast], payload)

    def _send(self, channels: List[str], payload: bytes) -> None:
        if self._redis() is None:
            self._dropped_down()
        elif self._queue:
            self._queue.append([channels, payload])  # behind a look-up: keep the order
        else:
            self._publish(channels, payload)

    def _flush(self) -> None:
        queue = self._queue
        while queue and (queue[0][0] is not None or queue[0][1] is None):
            channels, payload = queue.popleft()
            if payload is not None:
                self._publish(channels, payload)

    def _publish(self, channels: List[str], payload: bytes) -> None:
        redis = self._redis()
        if redis is None:
            self._dropped_down()
            return
        for channel in channels:
            redis.publish(channel, payload).addErrback(lambda f: self._dropped_down())

    def _envelope(self, message: Any, client_id: Optional[str] = None) -> Optional[bytes]:
        envelope: Dict[str, Any] = {"o": self.node_id, "m": message}
        if client_id is not None:
            envelope["c"] = client_id
        try:
            return dumps_json(envelope)
        except (TypeError, ValueError, RecursionError) as exc:
            _log.warn("cannot send a push to other nodes: {error}", error=str(exc))
            return None

    def _dropped_down(self, count: int = 1) -> None:
        self._outage_drops += count
        if self.hub is not None:
            self.hub.stats.drop("broker_down", count)

    # -- pushes arriving from other nodes ------------------------------------------------

    def _received(self, channel: bytes, payload: bytes) -> None:
        try:
            envelope = json.loads(payload)
            origin, message = envelope["o"], envelope["m"]
            if not isinstance(origin, str):
                raise ValueError("origin is not a str")
            client_id = envelope.get("c") if channel == self._node_channel else None
            if channel == self._node_channel and not isinstance(client_id, str):
                raise ValueError("no client id")
        except Exception:  # anything at all: garbage is dropped, never a crash
            self._garbage(channel, payload)
            return
        if origin == self.node_id or self.hub is None:
            return  # our own topic push or broadcast, already delivered here
        try:
            if client_id is not None:
                if not self.hub.deliver(message, client_id=client_id):
                    self.hub.stats.drop("unknown_client")
            elif channel == self._broadcast:
                self.hub.deliver(message)
            elif channel.startswith(self._topic_prefix):
                topic = channel[len(self._topic_prefix):].decode("utf-8", "replace")
                self.hub.deliver(message, topic=topic)
        except Exception:
            _log.failure("delivering a push from node {origin!r}", origin=origin)

    def _garbage(self, channel: bytes, payload: bytes) -> None:
        self.garbage += 1
        now = self.reactor.seconds()
        last = self._garbage_logged_at
        if last is None or now - last >= self.garbage_log_interval:
            self._garbage_logged_at = now
            _log.warn("dropped a message that is not ours on {channel!r}: {payload!r} "
                      "({count} so far)", channel=channel.decode("utf-8", "replace"),
                      payload=payload[:120], count=self.garbage)

    # -- presence ---------------------------------------------------------------------------

    def presence(self, topic: Optional[str] = None) -> Deferred[Dict[str, str]]:
        """The cluster's presence; this node's part only while Redis is down."""
        local = self.hub.local_presence(topic) if self.hub is not None else {}
        redis = self._redis()
        if redis is None:
            return succeed(local)

        def merge(others: Dict[str, str]) -> Dict[str, str]:
            others.update(local)  # this node's own registry is the fresher
            return others

        def failed(failure: Any) -> Dict[str, str]:
            self._failed(failure, "presence")
            return local

        return self.directory.presence(redis, topic).addCallbacks(merge, failed)
