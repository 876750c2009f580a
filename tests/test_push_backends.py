"""Choosing the push backend from the config (push/backends.py)."""

from twisted.trial.unittest import SynchronousTestCase

from pyliteflux import Config, Router, Server
from pyliteflux.push.backends import backend_for
from pyliteflux.push.local import LocalBackend
from pyliteflux.push.redis import RedisBackend


class BackendForTests(SynchronousTestCase):
    def test_local_keeps_the_current_one(self):
        current = LocalBackend("n")
        self.assertIs(backend_for(Config(node_id="n"), current), current)
        self.assertEqual(backend_for(Config(node_id="m"), current).node_id, "m")
        self.assertEqual(backend_for(Config(), current).node_id, "n")

    def test_redis(self):
        config = Config(push_backend="redis://:pw@127.0.0.1:1/0", node_id="w/1",
                        cluster_prefix="app", presence_ttl=5)
        backend = backend_for(config, LocalBackend("x"))
        self.assertIsInstance(backend, RedisBackend)
        self.assertEqual((backend.node_id, backend.keys.prefix, backend.presence_ttl),
                         ("w/1", "app", 5))
        self.assertFalse(backend.up)
        self.assertIs(backend_for(config, backend), backend)
        self.assertNotIn("pw", repr(backend))

    def test_the_server_picks_it_when_its_service_is_made(self):
        server = Server(router=Router(), info=False, node_id="n1")
        self.assertEqual(server.hub.node_id, "n1")
        server.config.push_backend = "redis://127.0.0.1:1/0"
        server.make_service()
        self.assertIsInstance(server.hub.backend, RedisBackend)
        self.assertIs(server.hub.backend.hub, server.hub)
