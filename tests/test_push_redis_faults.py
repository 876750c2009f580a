"""The Redis backend when Redis fails (SPEC §13): down at start, killed
mid-traffic, restarted, half-open; a password never logged."""

import treq
from twisted.internet import defer
from twisted.logger import formatEvent

from .redis_nodes import Nodes, RedisTestCase, until
from .redis_server import RedisServer


def warnings_about(events, text):
    return [e for e in events if text in e.get("log_format", "")]


class RedisDownAtStartTests(RedisTestCase):
    def setUp(self):
        self.redis = RedisServer(self)  # not started
        self.nodes = Nodes(self, self.redis)

    @defer.inlineCallbacks
    def test_serves_without_redis_and_joins_once_it_appears(self):
        logged = self.logged()
        a = yield self.nodes.start("a", wait_up=False)
        b = yield self.nodes.start("b", wait_up=False)
        backend = a.server.hub.backend
        self.assertFalse(backend.up)
        response = yield treq.get(a.url("/ping"), persistent=False)
        self.assertEqual((yield response.json()), {"pong": True})
        local = yield self.nodes.client(a)
        on_b = yield self.nodes.client(b)
        self.assertEqual(a.server.push_message("here", local.client_id), 1)
        self.assertEqual((yield local.next_line())["data"], "here")
        a.server.push_message("lost", on_b.client_id)
        a.server.push_message("lost too")
        self.assertEqual(a.server.hub.stats.dropped["broker_down"], 2)
        yield until(lambda: len(warnings_about(logged, "unreachable")) == 2, what="warnings")
        yield until(lambda: b.server.hub.backend.commands._attempts >= 3, what="retries")
        self.assertEqual(len(warnings_about(logged, "unreachable")), 2)  # once per node
        self.assertEqual((yield a.server.presence()), {local.client_id: "a"})

        yield self.redis.start()
        yield until(lambda: backend.up and b.server.hub.backend.up, what="joined")
        self.assertEqual((yield a.server.presence()),
                         {local.client_id: "a", on_b.client_id: "b"})
        a.server.push_message("now", on_b.client_id)
        self.assertEqual((yield on_b.next_line())["data"], "now")
        self.assertEqual(len(warnings_about(logged, "reachable again")), 2)


class RedisOutageTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_killed_mid_traffic_then_restarted(self):
        logged = self.logged()
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        on_a = yield self.nodes.client(a)
        on_b = yield self.nodes.client(b)
        yield on_b.request({"command": "join", "data": "room"})
        for i in range(50):
            a.server.push_message(i, on_b.client_id)
        yield self.redis.kill()  # SIGKILL, with pushes in flight
        yield until(lambda: not a.server.hub.backend.up and not b.server.hub.backend.up,
                    what="both to notice")
        # HTTP, commands and local pushes are unaffected; nothing hangs
        response = yield treq.get(a.url("/ping"), persistent=False)
        self.assertEqual(response.code, 200)
        yield response.content()
        self.assertEqual((yield on_a.request({"command": "hello"}))["client_id"],
                         on_a.client_id)
        self.assertEqual(a.server.push_message("local", on_a.client_id), 1)
        self.assertEqual((yield on_a.next_line())["data"], "local")
        before = a.server.hub.stats.dropped["broker_down"]
        for _ in range(20):
            a.server.push_message("dropped", on_b.client_id)
            a.server.push_message("dropped", topic="room")
        self.assertEqual(a.server.hub.stats.dropped["broker_down"] - before, 40)
        self.assertEqual(len(warnings_about(logged, "unreachable")), 2)  # once per node
        self.assertEqual((yield a.server.presence()), {on_a.client_id: "a"})

        yield self.redis.start()  # same port, empty: no persistence
        started = self.reactor.seconds()
        yield until(lambda: a.server.hub.backend.up and b.server.hub.backend.up,
                    what="reconnected")
        self.assertLess(self.reactor.seconds() - started, 3)
        # presence and subscriptions come back by themselves
        yield until(lambda: a.server.presence("room").addCallback(
            lambda p: p == {on_b.client_id: "b"}), what="presence restored")
        got = []
        while True:  # the pushes sent before the kill that made it, in order
            line = yield on_b.request({"command": "hello"})
            if "client_id" in line:
                break
            got.append(line["data"])
        self.assertEqual(got, sorted(got))
        a.server.push_message("back", topic="room")
        self.assertEqual((yield on_b.next_line())["data"], "back")
        self.assertEqual(len(warnings_about(logged, "reachable again")), 2)

    @property
    def reactor(self):
        from twisted.internet import reactor

        return reactor

    @defer.inlineCallbacks
    def test_a_half_open_connection_is_noticed_and_replaced(self):
        a = yield self.nodes.start("a")
        backend = a.server.hub.backend
        self.redis.pause()  # sockets stay open, nothing answers
        yield until(lambda: not backend.up, timeout=5, what="the PING timeout")
        self.assertEqual((yield a.server.presence()), {})  # answers, from this node
        self.redis.resume()
        yield until(lambda: backend.up, timeout=5, what="reconnected")


class PasswordTests(RedisTestCase):
    secret = "s3cr3t-pass"

    @defer.inlineCallbacks
    def setUp(self):
        self.redis = RedisServer(self, password=self.secret)
        yield self.redis.start()
        self.nodes = Nodes(self, self.redis)

    @defer.inlineCallbacks
    def test_with_the_password_it_works_and_never_logs_it(self):
        logged = self.logged()
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        on_b = yield self.nodes.client(b)
        a.server.push_message("hi", on_b.client_id)
        self.assertEqual((yield on_b.next_line())["data"], "hi")
        self.assertIn("***@", str(a.server.hub.backend.address))
        self.assertNoSecret(logged)

    @defer.inlineCallbacks
    def test_a_wrong_password_is_retried_not_given_up_on(self):
        logged = self.logged()
        url = self.redis.url.replace(self.secret, "wrong-" + self.secret)
        a = yield self.nodes.start("a", wait_up=False, url=url)
        link = a.server.hub.backend.commands
        yield until(lambda: link._attempts >= 3, what="retries")
        self.assertFalse(a.server.hub.backend.up)
        self.assertTrue(warnings_about(logged, "retrying"))
        self.assertNoSecret(logged)

    def assertNoSecret(self, events):
        for event in events:
            text = formatEvent(event) + repr(event)
            self.assertNotIn(self.secret, text)
