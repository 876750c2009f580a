"""A connection of the llhttp engine over an in-memory transport."""

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from pyliteflux import Router, Server
from pyliteflux.adapters import http_factory


def llhttp_app(**config):
    server = Server(router=Router(), info=False, http_engine="llhttp", **config)

    @server.route("/hello")
    def hello(request):
        return {"hello": "world"}

    return server


def connect(server, clock=None, port=40000):
    """(factory, protocol, transport, clock) of a new connection to ``server``."""
    clock = clock or Clock()
    factory = http_factory(server.adapter_context, reactor=clock)
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
    if proto is not None:
        proto.makeConnection(transport)
    return factory, proto, transport, clock
