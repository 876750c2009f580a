"""The reconnecting Redis connection (push/redis_link.py)."""

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase

from pyliteflux.push.redis_link import RedisLink, parse_redis_url

from .redis_nodes import RedisTestCase, until


class AddressTests(SynchronousTestCase):
    def test_a_full_url(self):
        a = parse_redis_url("redis://:pw%40x@redis.example:6380/2")
        self.assertEqual((a.host, a.port, a.db, a.password, a.username, a.tls),
                         ("redis.example", 6380, 2, "pw@x", None, False))

    def test_defaults(self):
        a = parse_redis_url("redis://")
        self.assertEqual((a.host, a.port, a.db, a.password), ("localhost", 6379, None, None))
        self.assertTrue(parse_redis_url("rediss://u:p@h").tls)

    def test_the_password_is_never_shown(self):
        a = parse_redis_url("redis://user:hunter2@h:1/0")
        self.assertEqual(str(a), "redis://***@h:1/0")
        self.assertNotIn("hunter2", repr(a))

    def test_bad_urls(self):
        for bad in ("http://h", "redis://h:port", "redis://h/x"):
            with self.assertRaises(ValueError):
                parse_redis_url(bad)

    def test_backoff_is_capped_at_two_seconds(self):
        link = RedisLink(parse_redis_url("redis://"), "command", None, print, print)
        delays = [link.retry_delay(n) for n in range(40)]
        self.assertLess(delays[0], 0.11)
        self.assertTrue(all(0 < d <= 2.0 for d in delays))
        self.assertGreater(delays[-1], 1.4)


class LinkTests(RedisTestCase):
    def link(self, kind="command", url=None, **kw):
        ready, down = [], []
        link = RedisLink(parse_redis_url(url or self.redis.url), kind, reactor,
                         ready.append, lambda: down.append(1), **kw)
        link.ping_interval, link.reply_timeout, link.max_delay = 0.1, 0.5, 0.2
        self.addCleanup(link.stop)
        link.start()
        return link, ready, down

    @defer.inlineCallbacks
    def test_up_after_a_ping_and_ready_again_after_each_reconnect(self):
        link, ready, down = self.link()
        yield until(lambda: link.up)
        self.assertEqual(len(ready), 1)
        self.assertEqual((yield link.protocol.execute_command("PING")), "PONG")
        yield self.redis.kill()
        yield until(lambda: not link.up)
        self.assertEqual(down, [1])
        yield self.redis.start()
        yield until(lambda: link.up)
        self.assertEqual(len(ready), 2)

    @defer.inlineCallbacks
    def test_channels_get_messages_as_bytes(self):
        got = []
        link, _, _ = self.link("channels", on_message=lambda c, p: got.append((c, p)))
        yield until(lambda: link.up)
        link.protocol.send("SUBSCRIBE", "ch1", "ch2")
        yield until(lambda: self.redis.command("PUBSUB", "NUMSUB", "ch2").addCallback(
            lambda r: int(r[1]) == 1))
        yield self.redis.command("PUBLISH", "ch2", b"\xff1")
        yield until(lambda: got)
        self.assertEqual(got, [(b"ch2", b"\xff1")])
        yield until(lambda: link._deadline is None)  # PINGs are answered while subscribed
        self.assertTrue(link.up)

    @defer.inlineCallbacks
    def test_stop_closes_and_stops_retrying(self):
        link, _, _ = self.link()
        yield until(lambda: link.up)
        yield link.stop()
        self.assertFalse(link.up)
        self.assertIsNone(link._retry)
