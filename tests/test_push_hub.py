"""The push hub (push/hub.py): one registry, topics, encode-once fan-out, presence."""

from twisted.trial.unittest import SynchronousTestCase

from pyliteflux import Router, Server
from pyliteflux.push import ConnectionRegistry, LocalBackend, PushHub
from pyliteflux.push.target import PUSH_FORMATS, TopicsMixin, register_push_format
from pyliteflux.testing import TestClient


class FakeTarget:
    """A push target that records what it is sent."""

    push_format = "json-line"
    transport_name = "fake"
    _topics = None

    def __init__(self, client_id, alive=True, fmt="json-line"):
        self.client_id = client_id
        self.alive = alive
        self.push_format = fmt
        self.sent = []

    def send_push(self, payload):
        if self.alive:
            self.sent.append(payload)
        return self.alive


class TopicTarget(TopicsMixin, FakeTarget):
    def __init__(self, client_id, hub):
        FakeTarget.__init__(self, client_id)
        self.hub = hub


class HubTests(SynchronousTestCase):
    def setUp(self):
        self.hub = PushHub(LocalBackend("node-a"), lambda: 3)
        self.hub.backend.start(self.hub)

    def test_register_and_unregister(self):
        a = FakeTarget("a")
        self.hub.register(a)
        self.assertIs(self.hub.connections["a"], a)
        self.hub.unregister(a)
        self.assertEqual(dict(self.hub.connections), {})

    def test_unregister_of_a_replaced_target_keeps_the_new_one(self):
        old, new = FakeTarget("a"), FakeTarget("a")
        self.hub.register(old)
        self.hub.register(new)
        self.hub.unregister(old)
        self.assertIs(self.hub.connections["a"], new)

    def test_push_to_one_client(self):
        a, b = FakeTarget("a"), FakeTarget("b")
        self.hub.register(a)
        self.hub.register(b)
        self.assertEqual(self.hub.push({"n": 1}, client_id="b"), 1)
        self.assertEqual(a.sent, [])
        self.assertEqual(b.sent, [b'{"type": "push", "data": {"n": 1}}\n'])
        self.assertEqual(self.hub.stats.messages["client"], 1)
        self.assertEqual(self.hub.stats.deliveries, {"fake": 1})

    def test_unknown_client_is_counted_and_logged(self):
        logged = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        self.assertEqual(self.hub.push("x", client_id="nobody"), 0)
        self.assertEqual(self.hub.stats.dropped["unknown_client"], 1)
        self.assertEqual([e["client_id"] for e in logged if "client_id" in e], ["nobody"])

    def test_broadcast_encodes_once_per_format(self):
        calls = []
        register_push_format("counted", lambda m, t: calls.append(m) or b"C")
        self.addCleanup(PUSH_FORMATS.pop, "counted")
        targets = [FakeTarget(str(i), fmt="counted") for i in range(5)]
        targets.append(FakeTarget("x", fmt="xml-line"))
        for t in targets:
            self.hub.register(t)
        self.assertEqual(self.hub.push("hi"), 6)
        self.assertEqual(calls, ["hi"])
        self.assertEqual(targets[-1].sent, [b"<push>hi</push>\n"])

    def test_gone_targets_are_not_counted(self):
        self.hub.register(FakeTarget("a"))
        self.hub.register(FakeTarget("b", alive=False))
        self.assertEqual(self.hub.push("x"), 1)

    def test_topics(self):
        a, b = FakeTarget("a"), FakeTarget("b")
        for t in (a, b):
            self.hub.register(t)
        self.hub.subscribe(a, "room")
        self.assertEqual(self.hub.push("hi", topic="room"), 1)
        self.assertEqual(a.sent, [b'{"type": "push", "topic": "room", "data": "hi"}\n'])
        self.assertEqual(b.sent, [])
        self.hub.unsubscribe(a, "room")
        self.assertEqual(self.hub.push("hi", topic="room"), 0)
        self.assertEqual(list(self.hub.topics()), [])

    def test_topic_limit(self):
        a = FakeTarget("a")
        self.hub.register(a)
        for name in ("t1", "t2", "t3"):
            self.hub.subscribe(a, name)
        self.hub.subscribe(a, "t3")  # again: not a new topic
        with self.assertRaises(ValueError):
            self.hub.subscribe(a, "t4")
        self.assertEqual(a._topics, {"t1", "t2", "t3"})

    def test_bad_topic_names(self):
        a = FakeTarget("a")
        for bad in ("", None, 3):
            with self.assertRaises(ValueError):
                self.hub.subscribe(a, bad)

    def test_unregister_leaves_every_topic(self):
        a = FakeTarget("a")
        self.hub.register(a)
        self.hub.subscribe(a, "room")
        self.hub.unregister(a)
        self.assertEqual(self.hub.subscribers("room"), set())
        self.assertEqual(self.hub.push("x", topic="room"), 0)

    def test_client_and_topic_together_is_a_value_error(self):
        with self.assertRaises(ValueError):
            self.hub.push_message("x", client_id="a", topic="t")

    def test_presence(self):
        a, b = FakeTarget("a"), FakeTarget("b")
        for t in (a, b):
            self.hub.register(t)
        self.hub.subscribe(b, "room")
        self.assertEqual(self.successResultOf(self.hub.presence()),
                         {"a": "node-a", "b": "node-a"})
        self.assertEqual(self.successResultOf(self.hub.presence("room")), {"b": "node-a"})

    def test_subscriber_count(self):
        a, b = FakeTarget("a"), FakeTarget("b")
        for t in (a, b):
            self.hub.register(t)
            self.hub.subscribe(t, "room")
        self.assertEqual(self.hub.subscriber_count("room"), 2)
        self.assertEqual(self.hub.subscriber_count("other"), 0)

    def test_backend_hears_left_while_the_topics_are_still_listed(self):
        seen = []

        class Recording(LocalBackend):
            def left(inner, target):
                seen.append((sorted(target.topics), inner.hub.subscriber_count("room"),
                             target.client_id in inner.hub.connections))

        self.hub.use_backend(Recording("n"))
        a = TopicTarget("a", self.hub)
        self.hub.register(a)
        a.subscribe("room")
        self.hub.unregister(a)
        self.assertEqual(seen, [(["room"], 1, False)])
        self.assertEqual(self.hub.subscriber_count("room"), 0)
        self.assertEqual(self.hub.node_id, "n")

    def test_registry_is_a_dict(self):
        registry = ConnectionRegistry()
        registry.register("a", 1)
        registry.unregister("a", 2)  # not the registered one: kept
        self.assertEqual(dict(registry), {"a": 1})


class ServerTopicTests(SynchronousTestCase):
    """Topics through a real TCP connection and the Server API (SPEC §12)."""

    def setUp(self):
        self.server = Server(router=Router(), info=False, tcp_keep_alive=True,
                             max_topics_per_connection=2)

        @self.server.route("join", protocol="tcp")
        def join(request):
            request.connection.subscribe(request.data)
            return {"topics": sorted(request.connection.topics)}

        self.client = TestClient(self.server)

    def test_subscribe_from_a_command_and_push_to_the_topic(self):
        conn = self.client.connect()
        other = self.client.connect()
        self.assertEqual(self.successResultOf(conn.send({"command": "join", "data": "a"})),
                         {"topics": ["a"]})
        self.assertEqual(self.server.push_message("hello", topic="a"), 1)
        self.assertEqual(conn.pushes, [{"type": "push", "topic": "a", "data": "hello"}])
        self.assertEqual(other.pushes, [])
        self.assertEqual(self.successResultOf(self.server.presence("a")),
                         {conn.client_id: self.server.hub.node_id})

    def test_one_topic_too_many_is_an_error_reply_and_the_connection_stays(self):
        conn = self.client.connect()
        for topic in ("a", "b"):
            self.successResultOf(conn.send({"command": "join", "data": topic}))
        reply = self.successResultOf(conn.send({"command": "join", "data": "c"}))
        self.assertEqual(reply, {"error": "at most 2 topics per connection "
                                          "(max_topics_per_connection)"})
        self.assertFalse(conn.closed)
        self.assertEqual(self.successResultOf(conn.send({"command": "join", "data": "a"})),
                         {"topics": ["a", "b"]})
        self.assertEqual(self.flushLoggedErrors(), [])  # a client's mistake, not ours

    def test_closing_leaves_presence_at_once(self):
        conn = self.client.connect()
        self.successResultOf(conn.send({"command": "join", "data": "a"}))
        conn.close()
        self.assertEqual(self.successResultOf(self.server.presence()), {})
        self.assertEqual(self.server.push_message("x", topic="a"), 0)
