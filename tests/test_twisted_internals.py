"""Every private Twisted attribute we rely on still exists and behaves as we
assume. These fail loudly on a Twisted upgrade that changes one (the runtime
falls back to public APIs where there are any, which would hide it)."""

import socket

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers

from pyliteflux import twisted_internals as ti


class AssumptionTests(SynchronousTestCase):
    def test_every_assumption_holds(self):
        self.assertEqual(ti.check(), [])

    def test_headers_keep_a_dict_of_canonical_names(self):
        self.assertTrue(ti.FAST_HEADERS)
        h = Headers()
        h.setRawHeaders(b"content-type", [b"a"])
        self.assertEqual(ti.raw_headers(h), {b"Content-Type": [b"a"]})
        ti.raw_headers(h)[b"Date"] = [b"b"]  # what the fast path does
        self.assertEqual(h.getRawHeaders(b"date"), [b"b"])

    def test_channel_parser_state(self):
        channel = HTTPChannel()
        channel.makeConnection(StringTransport())
        self.assertFalse(ti.in_request_headers(channel))
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")
        self.assertTrue(ti.in_request_headers(channel))
        self.assertGreater(ti.header_bytes_so_far(channel), 0)
        self.assertEqual(len(ti.channel_requests(channel)), 1)
        self.assertFalse(ti.headers_over_limits(channel))
        channel.totalHeadersSize = 10
        self.assertTrue(ti.headers_over_limits(channel))

    def test_the_hooks_we_override_exist(self):
        from twisted.web.server import Request

        self.assertTrue(callable(HTTPChannel._respondToBadRequestAndDisconnect))
        self.assertTrue(callable(Request._handleStar))


class WriteThroughTests(TestCase):
    """``send_now`` on a real TCP connection: all at once when idle, the rest queued."""

    def test_send_now_writes_in_order(self):
        received = bytearray()
        closed: Deferred = Deferred()

        class Sink(Protocol):
            def dataReceived(self, data):
                received.extend(data)

            def connectionLost(self, reason):
                closed.callback(None)

        port = reactor.listenTCP(0, Factory.forProtocol(Sink), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        from twisted.internet.endpoints import TCP4ClientEndpoint

        connecting = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            Factory.forProtocol(Protocol))

        def send(proto):
            self.assertTrue(ti.can_write_through(proto.transport))
            for byte in b"abc":
                ti.send_now(proto.transport, bytes([byte]) * 100_000)
            proto.transport.loseConnection()  # after what is queued has been sent
            return closed

        def check(_):
            self.assertEqual(bytes(received),
                             b"a" * 100_000 + b"b" * 100_000 + b"c" * 100_000)

        return connecting.addCallback(send).addCallback(check)

    def test_other_transports_do_not_qualify(self):
        self.assertFalse(ti.can_write_through(StringTransport()))
        self.assertIsInstance(IPv4Address("TCP", "127.0.0.1", 1), IPv4Address)
        self.assertTrue(socket.AF_INET)
