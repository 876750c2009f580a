"""The presence directory's keys and scripts (push/redis_presence.py) on a real Redis."""

from twisted.internet import defer, reactor

from pyliteflux.push.redis_link import RedisLink, parse_redis_url
from pyliteflux.push.redis_presence import PresenceDirectory, PresenceKeys

from .redis_nodes import RedisTestCase, until


class DirectoryTests(RedisTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        link = RedisLink(parse_redis_url(self.redis.url), "command", reactor,
                         lambda p: None, lambda: None)
        self.addCleanup(link.stop)
        link.start()
        yield until(lambda: link.up)
        self.r = link.protocol
        self.keys = PresenceKeys("p")
        self.a = PresenceDirectory(self.keys, "a", 0.3)
        self.b = PresenceDirectory(self.keys, "b", 30)

    @defer.inlineCallbacks
    def test_join_topics_leave(self):
        yield self.a.joined(self.r, "c1", [])
        yield self.a.topics_changed(self.r, "c1", {"x", "y"})
        yield self.a.refresh(self.r)
        yield self.a.restore(self.r, [("c1", {"x", "y"})])
        self.assertEqual((yield self.b.presence(self.r)), {"c1": "a"})
        self.assertEqual((yield self.b.presence(self.r, "y")), {"c1": "a"})
        self.assertEqual((yield self.b.presence(self.r, "z")), {})
        self.assertEqual((yield self.b.locate(self.r, "c1")), ["a"])
        yield self.a.left(self.r, "c1")
        self.assertEqual((yield self.b.presence(self.r)), {})
        self.assertEqual((yield self.b.locate(self.r, "c1")), [])

    @defer.inlineCallbacks
    def test_the_same_id_on_two_nodes_stays_reachable_when_one_leaves(self):
        yield self.a.joined(self.r, "c1", [])
        yield self.b.joined(self.r, "c1", [])  # the same "host:port" seen by b
        yield self.b.joined(self.r, "c1", ["t"])  # again: listed once
        self.assertEqual((yield self.b.locate(self.r, "c1")), ["a", "b"])
        yield self.a.left(self.r, "c1")
        self.assertEqual((yield self.b.locate(self.r, "c1")), ["b"])

    @defer.inlineCallbacks
    def test_restore_replaces_everything_of_the_node(self):
        yield self.a.joined(self.r, "gone", [])
        yield self.a.restore(self.r, [("c1", [])])
        self.assertEqual((yield self.b.presence(self.r)), {"c1": "a"})

    @defer.inlineCallbacks
    def test_a_node_that_stops_refreshing_expires_and_is_cleaned_up(self):
        yield self.a.restore(self.r, [("c1", [])])
        yield self.b.restore(self.r, [("c2", [])])
        self.assertTrue((yield self.a.refresh(self.r)))
        yield self.b.cleanup_dead(self.r)  # a is alive: kept
        self.assertEqual((yield self.b.locate(self.r, "c1")), ["a"])
        yield until(lambda: self.b.presence(self.r).addCallback(lambda p: p == {}))
        yield self.b.cleanup_dead(self.r)
        self.assertEqual((yield self.b.locate(self.r, "c1")), [])
        self.assertEqual((yield self.r.smembers("p:nodes")), {"b"})
        self.assertFalse((yield self.a.refresh(self.r)))  # it must restore
