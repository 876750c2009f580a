"""Nodes of a Redis cluster in the test process: each a real ``Server`` on
loopback ports with its own Redis connections, on the one reactor."""

import itertools

from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from pyliteflux import Router, Server
from pyliteflux.testing import serve

from .redis_server import RedisServer
from .tcp_client import LineClient

_prefixes = itertools.count()


def until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Fires once ``predicate()`` is true (polled on the reactor; it may
    return a Deferred); errbacks after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout

    @defer.inlineCallbacks
    def poll():
        while True:
            value = yield defer.maybeDeferred(predicate)
            if value:
                return value
            if reactor.seconds() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            yield task.deferLater(reactor, interval, lambda: None)

    return poll()


def make_server(url, node_id, prefix, presence_ttl=1.5, **settings):
    server = Server(router=Router(), info=False, tcp_keep_alive=True, push_backend=url,
                    node_id=node_id, cluster_prefix=prefix, presence_ttl=presence_ttl,
                    **settings)

    @server.route("join", protocol="tcp")
    def join(request):
        request.connection.subscribe(request.data)
        return {"topics": sorted(request.connection.topics)}

    @server.route("leave", protocol="tcp")
    def leave(request):
        request.connection.unsubscribe(request.data)
        return {"topics": sorted(request.connection.topics)}

    @server.route("hello", protocol="tcp")
    def hello(request):
        return {"client_id": request.client_id}

    @server.route("/push", method="POST")
    def push(request):
        data = request.json_data
        return {"reached": server.push_message(data["message"], data.get("client_id"),
                                               data.get("topic"))}

    @server.route("/ping")
    def ping(request):
        return {"pong": True}

    return server


class Nodes:
    """Start nodes on one Redis (a fresh prefix per test) and clients of them."""

    def __init__(self, testcase, redis, presence_ttl=1.5, fast=True):
        self.testcase = testcase
        self.redis = redis
        self.prefix = f"t{next(_prefixes)}"
        self.presence_ttl = presence_ttl
        self.fast = fast

    @defer.inlineCallbacks
    def start(self, node_id, wait_up=True, url=None, **settings):
        server = make_server(url or self.redis.url, node_id, self.prefix, self.presence_ttl,
                             **settings)
        running = yield serve(server)
        self.testcase.addCleanup(running.stop)
        backend = server.hub.backend
        if self.fast:
            for link in (backend.commands, backend.channels):
                link.ping_interval = 0.2
                link.reply_timeout = 0.6
                link.max_delay = 0.3
        if wait_up:
            yield until(lambda: backend.up, what=f"{node_id} up")
        return running

    @defer.inlineCallbacks
    def client(self, running):
        """A keep-alive TCP client of ``running``, with its client id."""
        conn = yield LineClient.connect(running.tcp_port)
        self.testcase.addCleanup(conn.transport.loseConnection)
        reply = yield conn.request({"command": "hello"})
        conn.client_id = reply["client_id"]
        return conn


class RedisTestCase(TestCase):
    """A fresh redis-server per test (``self.redis``) and ``self.nodes`` on it."""

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
