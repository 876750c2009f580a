"""SSE push targets at ``sse_path`` (SPEC §14) over real loopback sockets."""

import json
import re

from twisted.internet import protocol, reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from pyliteflux import Middleware, Router, Server
from pyliteflux.testing import serve
from tests.engines import per_engine


class SSEClient(protocol.Protocol):
    """Reads an event stream; ``wait_for(text)`` fires once ``text`` arrived."""

    def __init__(self, path, headers=b""):
        self.path = path
        self.headers = headers
        self.data = b""
        self.closed = Deferred()
        self._waits = []

    @classmethod
    def open(cls, port, path="/events", headers=b""):
        return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), cls(path, headers))

    def connectionMade(self):
        self.transport.write(b"GET " + self.path.encode() + b" HTTP/1.1\r\nHost: t\r\n"
                             + self.headers + b"Accept: text/event-stream\r\n\r\n")

    def dataReceived(self, data):
        self.data += data
        self._check()

    def _check(self):
        for item in list(self._waits):
            if item[0] in self.data:
                self._waits.remove(item)
                item[1].callback(self.data)

    def wait_for(self, text):
        d = Deferred()
        self._waits.append((text, d))
        self._check()
        return d

    def events(self):
        return [json.loads(m) for m in re.findall(rb"data: (\{.*\})\n\n", self.data)]

    def connectionLost(self, reason=None):
        self.closed.callback(self.data)

    def close(self):
        if self.transport.connected:
            self.transport.abortConnection()


def app(**config):
    return Server(router=Router(), info=False, **config)


@per_engine
class SSETests(TestCase):
    async def start(self, server):
        self.server = server
        self.running = await serve(server, protocol="http")
        self.addCleanup(self.running.stop)
        return self.running.http_port

    async def test_hello_registration_and_pushes(self):
        port = await self.start(app())
        client = await SSEClient.open(port)
        self.addCleanup(client.close)
        await client.wait_for(b"event: hello")
        self.assertIn(b"text/event-stream", client.data)
        (hello,) = client.events()
        client_id = hello["client_id"]
        self.assertTrue(client_id.startswith("sse:127.0.0.1:"))
        self.assertEqual(self.server.connections[client_id].transport_name, "sse")
        self.assertEqual(self.server.push_message({"n": 1}, client_id), 1)
        self.assertEqual(self.server.push_message("all"), 1)
        await client.wait_for(b'"all"')
        self.assertEqual(client.events()[1:], [{"type": "push", "data": {"n": 1}},
                                               {"type": "push", "data": "all"}])
        self.assertEqual(self.server.hub.stats.deliveries["sse"], 2)

    async def test_topics_from_the_query_string(self):
        port = await self.start(app())
        client = await SSEClient.open(port, "/events?topic=a&topic=b")
        self.addCleanup(client.close)
        await client.wait_for(b"event: hello")
        self.assertEqual(len(self.server.hub.subscribers("a")), 1)
        self.server.push_message("to b", topic="b")
        self.server.push_message("to c", topic="c")
        await client.wait_for(b"to b")
        self.assertEqual(client.events()[1:], [{"type": "push", "topic": "b", "data": "to b"}])

    async def test_too_many_topics_is_a_400(self):
        port = await self.start(app(max_topics_per_connection=1))
        client = await SSEClient.open(port, "/events?topic=a&topic=b")
        await client.wait_for(b"400")
        client.close()

    async def test_removed_when_the_stream_closes(self):
        port = await self.start(app())
        client = await SSEClient.open(port, "/events?topic=t")
        await client.wait_for(b"event: hello")
        self.assertEqual(len(self.server.connections), 1)
        client.transport.loseConnection()
        await client.closed
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(dict(self.server.connections), {})
        self.assertEqual(self.server.hub.subscribers("t"), set())

    async def test_heartbeat_comment_when_idle(self):
        server = app()
        port = await self.start(server)
        server.resource.sse.heartbeat = 0.05
        client = await SSEClient.open(port)
        self.addCleanup(client.close)
        await client.wait_for(b": heartbeat")

    async def test_http_middlewares_run_on_the_opening_request(self):
        class Auth(Middleware):
            def process_request(self, request):
                if not request.headers.get("Authorization"):
                    return {"error": "Unauthorized"}, 401
                return None

        server = app()
        server.add_middleware(Auth(), protocol="http")
        port = await self.start(server)
        refused = await SSEClient.open(port)
        await refused.wait_for(b"Unauthorized")
        self.assertIn(b" 401 ", refused.data)
        self.assertEqual(dict(server.connections), {})
        refused.close()
        allowed = await SSEClient.open(port, headers=b"Authorization: yes\r\n")
        self.addCleanup(allowed.close)
        await allowed.wait_for(b"event: hello")

    async def test_an_apps_own_route_wins(self):
        server = app()
        server.route("/events")(lambda request: {"mine": True})
        port = await self.start(server)
        client = await SSEClient.open(port)
        await client.wait_for(b'{"mine": true}')
        client.close()

    async def test_off_when_sse_path_is_none(self):
        port = await self.start(app(sse_path=None))
        client = await SSEClient.open(port)
        await client.wait_for(b"404")
        client.close()

    async def test_slow_consumer_is_disconnected_and_counted(self):
        port = await self.start(app(max_output_buffer=64 * 1024))
        client = await SSEClient.open(port)
        await client.wait_for(b"event: hello")
        client.transport.pauseProducing()
        for _ in range(2000):
            self.server.push_message("p" * 16384)
            if not self.server.connections:
                break
            await task.deferLater(reactor, 0, lambda: None)
        self.assertEqual(dict(self.server.connections), {})
        self.assertGreaterEqual(self.server.hub.stats.dropped["slow_consumer"], 1)
        client.close()

    async def test_shutdown_ends_the_stream(self):
        port = await self.start(app(shutdown_timeout=2))
        client = await SSEClient.open(port)
        await client.wait_for(b"event: hello")
        started = reactor.seconds()
        await self.running.stop()
        self.assertLess(reactor.seconds() - started, 1.5)
        data = await client.closed
        self.assertTrue(data.endswith(b"0\r\n\r\n"), data[-40:])  # the body's last chunk
