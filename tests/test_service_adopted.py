"""Shared listening sockets (``service.adopted``): opened once without
accepting, adopted from a descriptor as a worker does, for tcp:, unix: and ssl:."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from pyliteflux.service.adopted import AdoptedListenerService, family_of, open_shared
from tests.test_tap import make_self_signed


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"echo:" + data)
        self.transport.loseConnection()


def exchange(connect: Any, wrap: Any = None) -> bytes:
    """Blocking client (run in a thread): send, read to EOF."""
    sock = connect()
    sock.settimeout(10)
    if wrap is not None:
        sock = wrap(sock)
    with sock:
        sock.sendall(b"hi")
        chunks = []
        while True:
            chunk = sock.recv(1024)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


class AdoptedTests(unittest.TestCase):
    def adopt(self, desc: str) -> Any:
        """Open ``desc`` shared, adopt a duplicate of it as a worker would."""
        def opened(port: Any) -> Any:
            self.addCleanup(port.stopListening)
            fd = os.dup(port.fileno())  # what spawnProcess's childFDs gives a worker
            service = AdoptedListenerService("tcp", desc, (fd, family_of(port)),
                                             Factory.forProtocol(Echo), lambda: reactor,
                                             lambda: False)
            service.startService()
            self.addCleanup(service.stopService)
            return service.listening.addCallback(lambda _: (port, service))

        return open_shared(reactor, desc).addCallback(opened)

    def test_tcp(self) -> Any:
        def check(ports: Any) -> Any:
            shared, service = ports
            self.assertEqual(family_of(shared), "INET")
            where = ("127.0.0.1", shared.getHost().port)
            self.assertEqual(service.port.getHost().port, where[1])
            d = deferToThread(exchange, lambda: socket.create_connection(where))
            return d.addCallback(self.assertEqual, b"echo:hi")

        return self.adopt("tcp:0:interface=127.0.0.1").addCallback(check)

    def test_unix_stays_bound_after_a_worker_stops(self) -> Any:
        directory = tempfile.mkdtemp(prefix="plf-")  # short: AF_UNIX paths are limited
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "s")

        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(path)
            return sock

        def check(ports: Any) -> Any:
            shared, service = ports
            self.assertEqual(family_of(shared), "UNIX")
            d = deferToThread(exchange, connect)
            d.addCallback(self.assertEqual, b"echo:hi")
            d.addCallback(lambda _: service.stopService())
            d.addCallback(lambda _: self.assertTrue(os.path.exists(path)))
            return d

        return self.adopt(f"unix:{path}").addCallback(check)

    def test_ssl_is_layered_over_the_adopted_port(self) -> Any:
        paths = make_self_signed(os.path.abspath(self.mktemp()))
        desc = f"ssl:0:interface=127.0.0.1:privateKey={paths['key']}:certKey={paths['cert']}"
        context = ssl.create_default_context(cafile=paths["cert"])

        def check(ports: Any) -> Any:
            shared, _service = ports
            where = ("127.0.0.1", shared.getHost().port)
            d = deferToThread(exchange, lambda: socket.create_connection(where),
                              lambda s: context.wrap_socket(s, server_hostname="localhost"))
            return d.addCallback(self.assertEqual, b"echo:hi")

        return self.adopt(desc).addCallback(check)

    def test_a_shared_port_accepts_nothing_itself(self) -> Any:
        def check(port: Any) -> None:
            self.addCleanup(port.stopListening)
            self.assertFalse(port.connected and port in reactor.getReaders())

        return open_shared(reactor, "tcp:0:interface=127.0.0.1").addCallback(check)

    def test_open_shared_reports_a_bad_endpoint(self) -> Any:
        return self.assertFailure(open_shared(reactor, "nonsense:1"), ValueError)


class FairAcceptTests(unittest.TestCase):
    """A worker accepts one connection per wakeup of the shared socket, so
    the other workers woken with it take the rest of a burst."""

    adopt = AdoptedTests.adopt

    def test_one_accept_per_wakeup(self) -> Any:
        from pyliteflux.service.adopted import SharedTCPPort

        def check(ports: Any) -> Any:
            shared, service = ports
            port = service.port
            self.assertIsInstance(port, SharedTCPPort)
            port.stopReading()  # this test calls doRead itself
            where = ("127.0.0.1", shared.getHost().port)
            clients = [socket.create_connection(where) for _ in range(3)]
            for client in clients:
                self.addCleanup(client.close)
            built = []
            factory = port.factory
            original = factory.buildProtocol
            factory.buildProtocol = lambda addr: (built.append(addr), original(addr))[1]
            port.doRead()
            self.assertEqual(len(built), 1)
            port.doRead()
            self.assertEqual(len(built), 2)

        return self.adopt("tcp:0:interface=127.0.0.1").addCallback(check)
