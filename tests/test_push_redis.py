"""The Redis push backend (push/redis.py) with a real redis-server: several
nodes (Servers) in this process on one reactor, each with its own Redis
connections (SPEC §13)."""

import json

from twisted.internet import defer

from .redis_nodes import RedisTestCase, until


class RoutingTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_push_to_a_client_of_another_node(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        client = yield self.nodes.client(b)
        self.assertEqual(a.server.push_message({"n": 1}, client.client_id), 0)
        line = yield client.next_line()
        self.assertEqual(line, {"type": "push", "data": {"n": 1}})
        self.assertEqual(b.server.hub.stats.deliveries, {"tcp": 1})

    @defer.inlineCallbacks
    def test_pushes_from_one_node_to_one_client_keep_their_order(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        client = yield self.nodes.client(b)
        yield self.nodes.client(b)  # another client of the same node
        # a mix of kinds: the first client push waits for a directory look-up
        for i in range(300):
            if i % 3 == 2:
                a.server.push_message(i)  # broadcast
            else:
                a.server.push_message(i, client.client_id)
        got = []
        for _ in range(300):
            line = yield client.next_line()
            got.append(line["data"])
        self.assertEqual(got, list(range(300)))

    @defer.inlineCallbacks
    def test_a_client_push_is_published_to_its_node_only(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        c = yield self.nodes.start("c")
        client = yield self.nodes.client(b)
        other = yield self.nodes.client(c)
        a.server.push_message("for b", client.client_id)
        self.assertEqual((yield client.next_line())["data"], "for b")
        # c saw nothing arrive: its only client got nothing and it counted no drop
        other.send({"command": "hello"})
        self.assertEqual((yield other.next_line())["client_id"], other.client_id)
        self.assertEqual(c.server.hub.stats.dropped["unknown_client"], 0)
        self.assertEqual(c.server.hub.stats.deliveries, {})

    @defer.inlineCallbacks
    def test_push_to_an_unknown_client_is_counted(self):
        a = yield self.nodes.start("a")
        yield self.nodes.start("b")
        a.server.push_message("x", "10.9.9.9:1")
        yield until(lambda: a.server.hub.stats.dropped["unknown_client"] == 1)

    @defer.inlineCallbacks
    def test_topic_push_reaches_subscribers_on_every_node_once(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        c = yield self.nodes.start("c")
        on_a = yield self.nodes.client(a)
        on_b = yield self.nodes.client(b)
        yield self.nodes.client(c)  # not subscribed: c listens to no topic channel
        for conn in (on_a, on_b):
            yield conn.request({"command": "join", "data": "room"})
        yield until(lambda: self.numsub(["t:room"]).addCallback(lambda n: n == [2]),
                    what="subscriptions")
        self.assertEqual(a.server.push_message("hi", topic="room"), 1)
        expected = {"type": "push", "topic": "room", "data": "hi"}
        self.assertEqual((yield on_a.next_line()), expected)
        self.assertEqual((yield on_b.next_line()), expected)
        self.assertEqual(c.server.hub.backend._topics, set())
        # the last subscriber leaving a node unsubscribes it
        yield on_b.request({"command": "leave", "data": "room"})
        yield until(lambda: self.numsub(["t:room"]).addCallback(lambda n: n == [1]),
                    what="unsubscribed")

    def numsub(self, suffixes):
        """PUBSUB NUMSUB of our prefix's topic channels: [count, ...]."""
        channels = [f"{self.nodes.prefix}:{'topic:' + s[2:] if s.startswith('t:') else s}"
                    for s in suffixes]
        d = self.redis.command("PUBSUB", "NUMSUB", *channels)
        return d.addCallback(lambda r: [int(n) for n in r[1::2]])

    @defer.inlineCallbacks
    def test_broadcast_reaches_every_client_once(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        clients = []
        for node in (a, a, b, b):
            clients.append((yield self.nodes.client(node)))
        self.assertEqual(a.server.push_message("all"), 2)
        for conn in clients:
            self.assertEqual((yield conn.next_line()), {"type": "push", "data": "all"})
        a.server.push_message(0, clients[0].client_id)  # a marker: nothing came twice
        self.assertEqual((yield clients[0].next_line())["data"], 0)
        b.server.push_message(1, clients[2].client_id)
        self.assertEqual((yield clients[2].next_line())["data"], 1)


class PresenceTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_presence_spans_the_nodes(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        on_a = yield self.nodes.client(a)
        on_b = yield self.nodes.client(b)
        yield on_b.request({"command": "join", "data": "room"})
        expected = {on_a.client_id: "a", on_b.client_id: "b"}
        self.assertEqual((yield a.server.presence()), expected)
        self.assertEqual((yield b.server.presence()), expected)
        self.assertEqual((yield a.server.presence("room")), {on_b.client_id: "b"})

    @defer.inlineCallbacks
    def test_a_client_that_disconnects_leaves_at_once(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        on_b = yield self.nodes.client(b)
        self.assertIn(on_b.client_id, (yield a.server.presence()))
        on_b.transport.loseConnection()
        yield until(lambda: not b.server.connections, what="b to see the close")
        self.assertEqual((yield a.server.presence()), {})

    @defer.inlineCallbacks
    def test_a_node_that_stops_leaves_at_once(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        yield self.nodes.client(b)
        yield b.stop()
        self.assertEqual((yield a.server.presence()), {})
        members = yield self.redis.command("SMEMBERS", f"{self.nodes.prefix}:nodes")
        self.assertEqual(members, ["a"])

    @defer.inlineCallbacks
    def test_a_node_that_dies_drops_out_within_the_ttl(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        on_b = yield self.nodes.client(b)
        self.assertIn(on_b.client_id, (yield a.server.presence()))
        yield crash(b.server.hub.backend)
        died = self.reactor_seconds()
        yield until(lambda: a.server.presence().addCallback(lambda p: p == {}),
                    what="b to drop out")
        self.assertLessEqual(self.reactor_seconds() - died, self.nodes.presence_ttl + 0.2)
        # and a living node's refresh removes the dead node's entries
        yield until(lambda: self.redis.command("HLEN", f"{self.nodes.prefix}:clients")
                    .addCallback(lambda n: int(n) == 0), what="cleanup")
        a.server.push_message("x", on_b.client_id)
        yield until(lambda: a.server.hub.stats.dropped["unknown_client"] == 1)

    def reactor_seconds(self):
        from twisted.internet import reactor

        return reactor.seconds()


def crash(backend):
    """Make a node vanish from Redis without a word (as SIGKILL would)."""
    backend._refresh_call.cancel()
    return defer.gatherResults([backend.commands.stop(), backend.channels.stop()])


class GarbageTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_garbage_in_our_prefix_is_logged_and_dropped(self):
        logged = self.logged()
        a = yield self.nodes.start("a")
        client = yield self.nodes.client(a)
        yield client.request({"command": "join", "data": "room"})
        p = self.nodes.prefix
        for channel, payload in [
            (f"{p}:node:a", b"not json"), (f"{p}:node:a", b"\xff\xfe"),
            (f"{p}:node:a", b'{"o": "x", "m": 1}'),  # no client id
            (f"{p}:node:a", b'{"o": 5, "m": 1, "c": "y"}'), (f"{p}:broadcast", b"[1, 2]"),
            (f"{p}:broadcast", b'"just a string"'), (f"{p}:topic:room", b"{}"),
            (f"{p}:topic:room", json.dumps({"o": "x"}).encode()),
        ]:
            yield self.redis.command("PUBLISH", channel, payload)
        backend = a.server.hub.backend
        yield until(lambda: backend.garbage == 8, what="garbage counted")
        self.assertEqual(len([e for e in logged if "not ours" in e.get("log_format", "")]), 1)
        # still serving: a real push from elsewhere arrives
        yield self.redis.command("PUBLISH", f"{p}:topic:room",
                                 json.dumps({"o": "x", "m": "ok"}))
        self.assertEqual((yield client.next_line()), {"type": "push", "topic": "room",
                                                      "data": "ok"})
        self.assertTrue(backend.up)


class SharedIdTarget:
    """A push target with a chosen client id (two nodes can see the same
    "host:port": one host's clients reaching two nodes, or a load balancer)."""

    push_format = "json-line"
    transport_name = "fake"
    topics = frozenset()
    _topics = None

    def __init__(self, client_id):
        self.client_id = client_id
        self.sent = []

    def send_push(self, payload):
        self.sent.append(json.loads(payload))
        return True


class SharedIdTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_one_holder_leaving_keeps_the_other_reachable(self):
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        c = yield self.nodes.start("c")
        on_a, on_b = SharedIdTarget("127.0.0.1:5000"), SharedIdTarget("127.0.0.1:5000")
        a.server.hub.register(on_a)
        b.server.hub.register(on_b)
        a.server.hub.unregister(on_a)
        yield a.server.presence()  # a's commands are answered in order: the leave is done
        c.server.push_message("still here", "127.0.0.1:5000")
        yield until(lambda: on_b.sent, what="the push")
        self.assertEqual(on_b.sent, [{"type": "push", "data": "still here"}])
        b.server.hub.unregister(on_b)


class TLSTests(RedisTestCase):
    """``rediss://``: the links speak TLS and verify the server's certificate
    (here a throwaway one, trusted through ``SSL_CERT_FILE``)."""

    @defer.inlineCallbacks
    def setUp(self):
        import os

        from .redis_nodes import Nodes
        from .redis_server import RedisServer
        from .test_tap import make_self_signed

        paths = make_self_signed(os.path.abspath(self.mktemp()))
        self.trust(paths["cert"])
        self.redis = RedisServer(self, tls=paths)
        yield self.redis.start()
        self.nodes = Nodes(self, self.redis)

    def trust(self, cert):
        """OpenSSL reads SSL_CERT_FILE from the process's real environment."""
        import os

        old = os.environ.get("SSL_CERT_FILE")
        if cert is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = cert
        self.addCleanup(lambda: os.environ.pop("SSL_CERT_FILE", None) if old is None
                        else os.environ.__setitem__("SSL_CERT_FILE", old))

    @defer.inlineCallbacks
    def test_push_between_nodes_over_tls(self):
        self.assertTrue(self.redis.url.startswith("rediss://127.0.0.1:"))
        a = yield self.nodes.start("a")
        b = yield self.nodes.start("b")
        client = yield self.nodes.client(b)
        yield until(lambda: a.server.presence().addCallback(lambda p: client.client_id in p),
                    what="presence over TLS")
        self.assertEqual(a.server.push_message("over tls", client.client_id), 0)
        self.assertEqual((yield client.next_line()), {"type": "push", "data": "over tls"})

    @defer.inlineCallbacks
    def test_a_certificate_nobody_trusts_is_refused(self):
        self.trust(None)
        events = self.logged()
        node = yield self.nodes.start("a", wait_up=False)
        yield until(lambda: any("certificate verify failed" in str(e.get("why", ""))
                                for e in events), what="the TLS failure logged, with why")
        self.assertFalse(node.server.hub.backend.up)
