"""The llhttp factory: caps, access log, the Drainable of graceful shutdown."""

from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pyliteflux.adapters.llhttp import LLHTTPFactory
from tests.llhttp_helpers import connect, llhttp_app


class FactoryTests(SynchronousTestCase):
    def test_caps(self):
        server = llhttp_app(max_http_connections=1)
        factory, proto, _, clock = connect(server)
        self.assertIsInstance(factory, LLHTTPFactory)
        self.assertIsNone(factory.buildProtocol(proto.peer))
        self.assertEqual(factory.open_count(), 1)

    def test_drain_closes_idle_and_lets_busy_finish(self):
        server = llhttp_app()
        later = defer.Deferred()
        server.route("/later")(lambda request: later)
        factory, idle, idle_t, clock = connect(server)
        idle.dataReceived(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")  # used: keep-alive
        self.assertIn(b"404", idle_t.value())
        busy = factory.buildProtocol(idle.peer)
        busy_t = StringTransport()
        busy.makeConnection(busy_t)
        busy.dataReceived(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(factory.busy(), ["GET /later"])
        factory.close_idle()
        self.assertTrue(idle_t.disconnecting)
        self.assertFalse(busy_t.disconnecting)
        later.callback({"ok": 1})
        self.assertIn(b"Connection: close\r\n", busy_t.value())
        self.assertTrue(busy_t.disconnecting)
        self.assertEqual(factory.say_goodbye(), 0)
        self.assertEqual(len(factory.abort()), factory.open_count())
