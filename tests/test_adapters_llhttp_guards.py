"""The llhttp engine's timers, on a Clock."""

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.llhttp_helpers import connect, llhttp_app


class GuardTests(SynchronousTestCase):
    def test_idle_keep_alive_connection_times_out(self):
        _, proto, transport, clock = connect(llhttp_app(http_idle_timeout=5))
        proto.dataReceived(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        clock.advance(4)
        self.assertFalse(transport.disconnecting)
        clock.advance(1.5)
        self.assertTrue(transport.disconnecting)

    def test_busy_connection_is_not_idle(self):
        server = llhttp_app(http_idle_timeout=5)
        later = defer.Deferred()
        server.route("/later")(lambda request: later)
        _, proto, transport, clock = connect(server)
        proto.dataReceived(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
        clock.advance(20)
        self.assertFalse(transport.disconnecting)
        later.callback({"ok": 1})
        clock.advance(4)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_body_begun_late_gets_a_full_window(self):
        server = llhttp_app(min_body_rate=1)
        server.route("/p", method="POST")(lambda request: {"n": len(request.body)})
        _, proto, transport, clock = connect(server)
        proto.dataReceived(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" +
                           b"a" * 100)
        clock.advance(8)
        proto.dataReceived(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" +
                           b"a" * 20)
        clock.advance(3)  # the connection's timer fires 3 s into this body: not judged yet
        self.assertNotIn(b"408", transport.value())
        clock.advance(8)  # 11 s with 20 bytes: slower than 1 byte/s? no, 20 >= 10
        self.assertNotIn(b"408", transport.value())
        clock.advance(10)
        self.assertIn(b"HTTP/1.1 408 ", transport.value())
