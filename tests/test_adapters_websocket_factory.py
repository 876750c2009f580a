"""The WebSocket factory and upgrade resource: every autobahn limit set from
our config, routing of ``websocket_path`` in our Site, the HTTP connection
slot, and shutdown (a ``{"type": "shutdown"}`` message and a 1001 close)."""


from twisted.internet import protocol, reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from pyliteflux import Router, Server
from pyliteflux.adapters.websocket import WebSocketFactory
from pyliteflux.testing import serve
from tests.ws_client import RawWebSocket


def app(**config):
    server = Server(router=Router(), info=False, **config)
    server.route("echo", protocol="tcp")(lambda request: {"echo": request.data})
    server.route("slow", protocol="tcp")(
        lambda request: task.deferLater(reactor, 0.2, lambda: {"slow": "done"}))
    return server


class _Raw(protocol.Protocol):
    def __init__(self, request):
        self.request = request
        self.data = b""
        self.done = Deferred()

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason=None):
        self.done.callback(self.data)


async def http(port, request):
    proto = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), _Raw(request))
    return await proto.done


class OptionTests(TestCase):
    def test_every_limit_is_set_from_the_config(self):
        server = app(max_line_length=4096, websocket_ping_interval=7, header_timeout=3)
        factory = WebSocketFactory(server.adapter_context)
        self.assertEqual(factory.maxMessagePayloadSize, 4096)
        self.assertEqual(factory.maxFramePayloadSize, 4096)
        self.assertEqual(factory.autoPingInterval, 7)
        self.assertEqual(factory.autoPingTimeout, 7)
        self.assertEqual(factory.openHandshakeTimeout, 3)
        self.assertEqual(factory.closeHandshakeTimeout, 1.0)
        self.assertFalse(factory.failByDrop)  # failures send their close code
        self.assertTrue(factory.utf8validateIncoming)
        self.assertIsNone(factory.perMessageCompressionAccept([object()]))
        self.assertFalse(factory.webStatus)

    def test_pings_off_with_zero(self):
        factory = WebSocketFactory(app(websocket_ping_interval=0).adapter_context)
        self.assertEqual(factory.autoPingInterval, 0)

    def test_site_without_websocket_path(self):
        site = app(websocket_path=None).site()
        self.assertIsNone(site.websocket)
        self.assertNotIn(b"/ws", site.special_paths)


class RoutingTests(TestCase):
    async def test_plain_get_on_the_websocket_path_is_the_apps(self):
        server = app()
        server.route("/ws")(lambda request: {"plain": True})
        running = await serve(server, protocol="http")
        self.addCleanup(running.stop)
        raw = await http(running.http_port, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertIn(b'{"plain": true}', raw)

    async def test_custom_path_and_query_string(self):
        server = app(websocket_path="/socket")
        running = await serve(server, protocol="http")
        self.addCleanup(running.stop)
        ws = await RawWebSocket.open(running.http_port, path="/socket?token=1")
        self.addCleanup(ws.close)
        self.assertEqual(await ws.request("echo a"), {"echo": "a"})

    async def test_connection_slot_is_kept_until_the_websocket_closes(self):
        server = app()
        running = await serve(server, protocol="http")
        self.addCleanup(running.stop)
        site = server._service.drainables[0]
        ws = await RawWebSocket.open(running.http_port)
        await ws.request("echo a")
        self.assertEqual(site.limiter.total, 1)
        self.assertEqual(site.open_count(), 1)  # the WebSocket, not the old channel
        ws.transport.loseConnection()
        await ws.closed
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(site.limiter.total, 0)
        self.assertEqual(site.open_count(), 0)

    async def test_http_limits_count_websockets(self):
        server = app(max_http_connections=1)
        running = await serve(server, protocol="http")
        self.addCleanup(running.stop)
        ws = await RawWebSocket.open(running.http_port)
        self.addCleanup(ws.close)
        raw = await http(running.http_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(raw, b"")  # refused: the WebSocket holds the one slot


class ShutdownTests(TestCase):
    async def test_clients_get_shutdown_and_1001_within_the_timeout(self):
        server = app(shutdown_timeout=2)
        running = await serve(server, protocol="http")
        ws = await RawWebSocket.open(running.http_port)
        xml = await RawWebSocket.open(running.http_port)
        await ws.request("echo a")
        await xml.request('<request command="echo"/>')
        ws.send("slow")  # in flight: answered before the goodbye
        while not any(c.pending_count for c in server.connections.values()):
            await task.deferLater(reactor, 0.01, lambda: None)
        started = reactor.seconds()
        await running.stop()
        self.assertLess(reactor.seconds() - started, 2)
        self.assertEqual(await ws.next(), {"slow": "done"})
        self.assertEqual(await ws.next(), {"type": "shutdown"})
        self.assertEqual(await xml.next(), "<shutdown />")
        self.assertEqual(await ws.closed, 1001)
        self.assertEqual(await xml.closed, 1001)
        self.assertEqual(server.connections, {})


