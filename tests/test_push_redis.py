"""The Redis push backend (push/redis.py) with a real redis-server: several
nodes (Servers) in this process on one reactor, each with its own Redis
connections (SPEC §13)."""

import json

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from .redis_nodes import Nodes, until
from .redis_server import RedisServer


class RedisTestCase(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.redis = RedisServer(self)
        yield self.redis.start()
        self.nodes = Nodes(self, self.redis)

    def logged(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events


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
