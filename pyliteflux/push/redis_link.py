"""One connection to Redis that stays up: txredisapi's protocol, our reconnecting.

``txredisapi`` (1.6) speaks the Redis protocol on the reactor; keeping the
connection up is done here, the way large users harden it:

- we reconnect forever with a capped backoff (``max_delay``, 2 s): its own
  factory gives up for good after a failed AUTH or SELECT, ours does not
  (``stopTrying`` does nothing; a wrong password is logged and retried);
- a connection is *up* only after AUTH/SELECT and a first PING answered
  within ``reply_timeout``; only then does the owner restore its state
  (subscriptions, presence) through ``on_ready``;
- a PING every ``ping_interval``: no answer within ``reply_timeout`` aborts
  the connection, so a half-open one (a Redis host gone without a FIN) is
  noticed in seconds and replaced.

The password of a URL is kept in ``RedisAddress`` only; ``str()`` of an
address (what every log line uses) never shows it.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Optional
from urllib.parse import unquote, urlsplit

import txredisapi  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.logger import Logger

__all__ = ["RedisAddress", "parse_redis_url", "RedisLink", "CommandProtocol",
           "ChannelProtocol"]

_log = Logger(namespace="pyliteflux.push.redis")


class RedisAddress:
    """Where Redis is: host, port, db, credentials (never shown by ``str``)."""

    __slots__ = ("host", "port", "db", "username", "password", "tls")

    def __init__(self, host: str = "localhost", port: int = 6379, db: Optional[int] = None,
                 username: Optional[str] = None, password: Optional[str] = None,
                 tls: bool = False) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password, self.tls = username, password, tls

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = "***@" if self.password else ""
        db = f"/{self.db}" if self.db is not None else ""
        return f"{scheme}://{auth}{self.host}:{self.port}{db}"

    __repr__ = __str__


def parse_redis_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]`` (``rediss://``: TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("a Redis URL starts with redis:// or rediss://")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("the port of a Redis URL must be a number") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("the path of a Redis URL is a database number (/0)")
    return RedisAddress(parts.hostname or "localhost", port, int(path) if path else None,
                        unquote(parts.username) if parts.username else None,
                        unquote(parts.password) if parts.password is not None else None,
                        parts.scheme == "rediss")


class _LinkProtocol(txredisapi.RedisProtocol):  # type: ignore[misc]
    """Notes why the connection ended, for the log of a failed AUTH/SELECT
    (txredisapi says only "Lost connection"; a TLS failure says why)."""

    factory: "_LinkFactory"

    def connectionLost(self, reason: Any) -> None:
        self.factory.link.last_lost = reason
        super().connectionLost(reason)


class CommandProtocol(_LinkProtocol):
    """Request/reply commands (txredisapi's own), plus our PING."""

    factory: "_LinkFactory"

    def ping_link(self) -> None:
        d = self.execute_command("PING")
        d.addCallbacks(lambda _: self.factory.link.pong(self), lambda _: None)


class ChannelProtocol(_LinkProtocol):
    """A connection in SUBSCRIBE mode: messages go to the link's owner.

    txredisapi's SubscriberProtocol pairs (un)subscribe confirmations and
    PONGs with waiting calls, which goes wrong when a SUBSCRIBE of several
    channels answers several times; here nothing waits: commands are
    written, confirmations are ignored, a PONG notes the link is alive.
    """

    factory: "_LinkFactory"

    def replyReceived(self, reply: Any) -> None:
        if not self._ready:  # AUTH/SELECT, answered through txredisapi's queue
            super().replyReceived(reply)
            return
        if isinstance(reply, list) and reply:
            kind = reply[0]
            if kind == b"message" and len(reply) == 3:
                self.factory.link.on_message(reply[1], reply[2])
                return
            if kind == b"pong":
                self.factory.link.pong(self)
                return
            if kind in (b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe"):
                return
        if reply in ("PONG", b"PONG"):  # answered before the first SUBSCRIBE
            self.factory.link.pong(self)
            return
        if isinstance(reply, Exception):
            _log.warn("Redis {address}: {error}", address=self.factory.link.address,
                      error=str(reply))

    def send(self, *args: Any) -> None:
        """Write one command; its answer (if any) arrives as a reply above."""
        self.transport.write(self._build_command(*args))

    def ping_link(self) -> None:
        self.send("PING")


class _LinkFactory(Factory):
    """Builds the link's protocols; the hooks txredisapi's protocol calls."""

    noisy = False
    isLazy = False  # read by txredisapi when AUTH/SELECT fails

    def __init__(self, link: "RedisLink", protocol: type, charset: Optional[str]) -> None:
        self.link = link
        self.protocol_class = protocol
        self.charset = charset

    def buildProtocol(self, addr: Any) -> Any:
        a = self.link.address
        proto = self.protocol_class(self.charset, replyTimeout=self.link.reply_timeout,
                                    password=a.password, dbid=a.db, convertNumbers=False,
                                    username=a.username)
        proto.factory = self
        proto.callLater = self.link.reactor.callLater
        return proto

    def stopTrying(self) -> None:
        """txredisapi stops for good after a failed AUTH/SELECT: we retry."""

    def connectionError(self, why: str) -> None:
        # why is Redis's own error text ("WRONGPASS ..."), never the password
        lost = self.link.last_lost
        if why.endswith("Lost connection") and lost is not None \
                and not lost.check(ConnectionDone):
            why = f"{why} ({lost.getErrorMessage()})"  # e.g. the certificate is not trusted
        _log.warn("Redis {address}: {why}; retrying", address=self.link.address, why=why)


class RedisLink:
    """One connection kept up: ``on_ready(protocol)`` each time it is usable
    again, ``on_down()`` when it stops being (or first fails to be) usable.

    ``kind`` is ``"command"`` (request/reply) or ``"channels"`` (SUBSCRIBE
    mode; ``on_message(channel, payload)`` gets each message as bytes).
    """

    initial_delay = 0.1
    #: seconds between reconnection attempts at most (SPEC §13: 2 s)
    max_delay = 2.0
    ping_interval = 1.0
    reply_timeout = 3.0
    connect_timeout = 3.0

    def __init__(self, address: RedisAddress, kind: str, reactor: Any,
                 on_ready: Callable[[Any], Any], on_down: Callable[[], Any],
                 on_message: Callable[[bytes, bytes], Any] = lambda c, p: None) -> None:
        self.address = address
        self.kind = kind
        self.reactor = reactor
        self.on_ready = on_ready
        self.on_down = on_down
        self.on_message = on_message
        if kind == "channels":
            self._factory = _LinkFactory(self, ChannelProtocol, None)
        else:
            self._factory = _LinkFactory(self, CommandProtocol, "utf-8")
        self.protocol: Any = None  # the connected one (up or still preparing)
        #: why the last connection ended (a Failure), for the logs
        self.last_lost: Any = None
        self.up = False
        self._state = "stopped"  # stopped, starting, up, down
        self._attempts = 0
        self._retry: Any = None
        self._connecting: Optional[Deferred[Any]] = None
        self._deadline: Any = None  # the pending check of an unanswered PING
        self._ping_loop: Any = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._state != "stopped":
            return
        self._state = "starting"
        self._attempt()

    def stop(self) -> Deferred[None]:
        """Stop reconnecting and close; fires when the connection is closed."""
        self._state = "stopped"
        self.up = False
        self._cancel_timers()
        if self._connecting is not None:
            self._connecting.cancel()
        proto = self.protocol
        if proto is None or proto.transport is None:
            return succeed(None)
        timer = self.reactor.callLater(self.reply_timeout, self._abort, proto)
        d: Deferred[None] = proto.whenDisconnected()
        d.addCallback(lambda _: timer.cancel() if timer.active() else None)
        proto.transport.loseConnection()
        return d

    def _endpoint(self) -> Any:
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

        endpoint: Any = HostnameEndpoint(self.reactor, self.address.host, self.address.port,
                                    timeout=self.connect_timeout)
        if self.address.tls:
            from twisted.internet.ssl import optionsForClientTLS

            endpoint = wrapClientTLS(optionsForClientTLS(self.address.host), endpoint)
        return endpoint

    def _attempt(self) -> None:
        self._retry = None
        if self._state == "stopped":
            return
        self._connecting = d = self._endpoint().connect(self._factory)
        d.addCallbacks(self._connected, self._failed)

    def _connected(self, proto: Any) -> None:
        self._connecting = None
        if self._state == "stopped":
            proto.transport.loseConnection()
            return
        self.protocol = proto
        proto.whenDisconnected().addCallback(self._lost)
        # usable once AUTH/SELECT are done and a first PING is answered in time
        self._deadline = self.reactor.callLater(self.reply_timeout, self._abort, proto)
        proto.whenConnected().addCallback(lambda p: p.ping_link())

    def _failed(self, failure: Any) -> None:
        self._connecting = None
        if self._state == "stopped":
            return
        _log.debug("Redis {address}: cannot connect: {error}", address=self.address,
                   error=failure.getErrorMessage())
        self._went_down()
        self._schedule()

    def pong(self, proto: Any) -> None:
        """A PING was answered on ``proto``."""
        if proto is not self.protocol:
            return
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        if not self.up and self._state != "stopped":
            self.up = True
            self._state = "up"
            self._attempts = 0
            self._ping_loop = self.reactor.callLater(self.ping_interval, self._tick)
            try:
                self.on_ready(proto)
            except Exception:
                _log.failure("Redis {address}: restoring state failed", address=self.address)

    def _tick(self) -> None:
        """Every ``ping_interval``: a PING, unless one is still unanswered."""
        self._ping_loop = self.reactor.callLater(self.ping_interval, self._tick)
        proto = self.protocol
        if proto is None or not self.up or self._deadline is not None:
            return
        self._deadline = self.reactor.callLater(self.reply_timeout, self._abort, proto)
        proto.ping_link()

    def _abort(self, proto: Any) -> None:
        self._deadline = None
        if proto is self.protocol and self._state != "stopped":
            _log.info("Redis {address}: no answer within {timeout} s; reconnecting",
                      address=self.address, timeout=self.reply_timeout)
        if proto.transport is not None:
            proto.transport.abortConnection()

    def _lost(self, proto: Any) -> None:
        if proto is not self.protocol:
            return
        self.protocol = None
        self._cancel_timers()
        if self._state == "stopped":
            return
        self._went_down()
        self._schedule()

    def _went_down(self) -> None:
        was = self._state
        self.up = False
        self._state = "down"
        if was in ("up", "starting"):
            try:
                self.on_down()
            except Exception:
                _log.failure("Redis {address}: on_down failed", address=self.address)

    def retry_delay(self, attempt: int) -> float:
        """Seconds before the next try: doubling from ``initial_delay``, with
        jitter, never over ``max_delay``."""
        delay = self.initial_delay * (2 ** min(attempt, 16))
        return float(min(self.max_delay, delay * random.uniform(0.75, 1.0)))

    def _schedule(self) -> None:
        if self._state == "stopped" or self._retry is not None:
            return
        delay = self.retry_delay(self._attempts)
        self._attempts += 1
        self._retry = self.reactor.callLater(delay, self._attempt)

    def _cancel_timers(self) -> None:
        for name in ("_deadline", "_ping_loop", "_retry"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
