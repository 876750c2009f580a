"""Ceiling: a raw Twisted Protocol answering every request with canned bytes.

It does no HTTP parsing beyond counting request ends (``\\r\\n\\r\\n``), so
keep-alive and pipelining work; this is what the reactor and the socket
cost with no web framework at all.
"""

from _common import HELLO, parse, ready
from twisted.internet import protocol, reactor

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(HELLO)
) + HELLO


class Canned(protocol.Protocol):
    buf = b""

    def dataReceived(self, data):
        buf = self.buf + data
        n = buf.count(b"\r\n\r\n")
        if n:
            self.transport.write(RESPONSE * n)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        self.buf = buf


def main():
    args = parse(("hello",))
    factory = protocol.Factory.forProtocol(Canned)
    factory.noisy = False
    port = reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    ready(port.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
