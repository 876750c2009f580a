"""End to end: separate node processes (``python -m pyliteflux --app
examples.cluster:server --push-backend redis://...``) on one redis-server;
a push on one node reaches a TCP client of the other; a node killed with
SIGKILL drops out of presence within presence_ttl."""

import json
import os
import sys

import treq
from twisted.internet import defer, error, protocol, reactor

from .redis_nodes import RedisTestCase, until
from .redis_server import free_port
from .tcp_client import LineClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Output(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)


class NodeProcessTests(RedisTestCase):
    timeout = 90

    def spawn_node(self, node_id, ttl=1.5):
        http, tcp = free_port(), free_port()
        args = [sys.executable, "-m", "pyliteflux", "--app", "examples.cluster:server",
                "--push-backend", self.redis.url, "--node-id", node_id,
                "--http", f"tcp:{http}:interface=127.0.0.1",
                "--tcp", f"tcp:{tcp}:interface=127.0.0.1"]
        env = dict(os.environ, PYLITEFLUX_CLUSTER_PREFIX=self.nodes.prefix,
                   PYLITEFLUX_PRESENCE_TTL=str(ttl), PYTHONPATH=ROOT)
        out = _Output()
        process = reactor.spawnProcess(out, sys.executable, args, env=env, path=ROOT)

        def kill():
            try:
                process.signalProcess("KILL")
            except error.ProcessExitedAlready:
                return None
            return out.ended

        self.addCleanup(kill)
        return {"http": http, "tcp": tcp, "kill": kill, "out": out}

    def get(self, node, path):
        d = treq.get(f"http://127.0.0.1:{node['http']}{path}", persistent=False)
        return d.addCallback(treq.json_content)

    @defer.inlineCallbacks
    def up(self, node):
        def ready():
            d = self.get(node, "/stats")
            d.addCallbacks(lambda s: s["broker_up"], lambda f: False)
            return d

        yield until(ready, timeout=30, interval=0.1,
                    what=f"node on {node['http']}: {node['out'].output[-300:]!r}")

    @defer.inlineCallbacks
    def test_push_from_one_node_reaches_a_client_of_the_other(self):
        n1, n2 = self.spawn_node("n1"), self.spawn_node("n2")
        yield defer.gatherResults([self.up(n1), self.up(n2)])
        client = yield LineClient.connect(n2["tcp"])
        self.addCleanup(client.transport.loseConnection)
        me = yield client.request("whoami")
        self.assertEqual(me["node"], "n2")
        yield client.request("subscribe news")
        reply = yield self.get(n1, f"/push?client_id={me['client_id']}&message=hi")
        self.assertEqual(reply, {"reached_here": 0, "node": "n1"})
        self.assertEqual((yield client.next_line()), {"type": "push", "data": "hi"})
        yield self.get(n1, "/push?topic=news&message=extra")
        self.assertEqual((yield client.next_line()),
                         {"type": "push", "topic": "news", "data": "extra"})
        self.assertEqual((yield self.get(n1, "/presence")), {me["client_id"]: "n2"})

        yield n2["kill"]()  # SIGKILL: n2 says nothing
        killed = reactor.seconds()
        yield until(lambda: self.get(n1, "/presence").addCallback(lambda p: p == {}),
                    timeout=10, interval=0.1, what="n2 to drop out")
        self.assertLess(reactor.seconds() - killed, 1.5 + 0.5)
        stats = yield self.get(n1, "/stats")
        self.assertTrue(stats["broker_up"])
        json.dumps(stats)
