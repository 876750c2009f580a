"""The workers' accept ledger (``service.balance``) and the shared port that
follows it (``service.adopted``): a worker clearly ahead lets the next new
connection go to the others, but never for more than ``DEFER`` seconds."""

from __future__ import annotations

import os
import socket
from typing import Any, List

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial import unittest

from pyliteflux.service import balance
from pyliteflux.service.adopted import SharedTCPPort, open_shared
from pyliteflux.twisted_internals import adopt_listening_port


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class LedgerTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        made = balance.AcceptLedger.create(3)
        if made is None:
            raise unittest.SkipTest("no os.memfd_create here")
        self.addCleanup(os.close, made.fd)
        self.addCleanup(made.close)
        self.clock = Clock()
        # three workers on the one shared mapping, as after spawnProcess
        self.w = [balance.AcceptLedger(os.dup(made.fd), 3, n, self.clock) for n in range(3)]
        for ledger in self.w:
            self.addCleanup(os.close, ledger.fd)
            self.addCleanup(ledger.close)
            ledger.join()

    def test_ahead_only_beyond_the_ratio_and_slack(self) -> None:
        w0, w1, w2 = self.w
        for _ in range(3):
            w0.accepted()
        self.assertTrue(w0.ahead())  # 3 > 0 * 1.25 + 2
        self.assertFalse(w1.ahead())
        for _ in range(8):
            w1.accepted()
            w2.accepted()
        for _ in range(9):
            w0.accepted()
        self.assertFalse(w0.ahead())  # 12 <= 8 * 1.25 + 2
        w0.accepted()
        self.assertTrue(w0.ahead())  # 13 > 12
        for _ in range(5):
            w0.closed()
        self.assertFalse(w0.ahead())  # connections that closed count no more

    def test_a_worker_that_stops_beating_is_left_out(self) -> None:
        w0, w1, w2 = self.w
        for _ in range(5):
            w0.accepted()
            w2.accepted()
        self.assertTrue(w0.ahead())  # w1 holds none
        self.clock.now += balance.STALE + 0.1  # w1 dead or stuck: no heartbeat
        w0.beat()
        w2.beat()
        self.assertFalse(w0.ahead())
        w1.join()  # its replacement starts with no connections
        self.assertTrue(w0.ahead())

    def test_counts_never_go_below_zero(self) -> None:
        self.w[0].closed()
        self.assertEqual(self.w[1]._read(0)[0], 0)


class PortTests(unittest.TestCase):
    def setUp(self) -> Any:
        made = balance.AcceptLedger.create(2)
        if made is None:
            raise unittest.SkipTest("no os.memfd_create here")
        self.addCleanup(os.close, made.fd)
        self.addCleanup(made.close)
        self.mine = balance.AcceptLedger(os.dup(made.fd), 2, 0)
        self.other = balance.AcceptLedger(os.dup(made.fd), 2, 1)
        for ledger in (self.mine, self.other):
            self.addCleanup(os.close, ledger.fd)
            self.addCleanup(ledger.close)
            ledger.join()
        balance.use(self.mine)
        self.addCleanup(balance.use, None)
        self.built: List[Any] = []
        factory = Factory.forProtocol(Protocol)
        original = factory.buildProtocol
        factory.buildProtocol = lambda addr: (self.built.append(addr), original(addr))[1]

        def opened(shared: Any) -> None:
            self.addCleanup(shared.stopListening)
            fd = os.dup(shared.fileno())
            os.set_blocking(fd, False)
            self.port = adopt_listening_port(SharedTCPPort, reactor, fd, socket.AF_INET, factory)
            os.close(fd)
            self.addCleanup(self.port.stopListening)
            self.port.stopReading()  # these tests call doRead themselves
            self.where = ("127.0.0.1", shared.getHost().port)

        return open_shared(reactor, "tcp:0:interface=127.0.0.1").addCallback(opened)

    def connect(self) -> None:
        client = socket.create_connection(self.where)
        self.addCleanup(client.close)

    def test_connections_are_counted_open_and_closed(self) -> None:
        self.connect()
        self.port.doRead()
        self.assertEqual((len(self.built), self.mine._read(0)[0]), (1, 1))
        (server,) = [t for t in reactor.getReaders() if getattr(t, "_ledger", None)]
        server.loseConnection()
        return deferLater(reactor, 0.05, lambda: self.assertEqual(self.mine._read(0)[0], 0))

    def test_ahead_lets_one_go_then_takes_it_after_the_delay(self) -> Any:
        for _ in range(3):
            self.mine.accepted()  # ahead of the other worker (0)
        self.connect()
        self.port.doRead()
        self.assertEqual(self.built, [])  # left for the other worker
        self.assertNotIn(self.port, reactor.getReaders())

        def later() -> None:  # nobody took it: this worker accepts it after all
            self.assertIn(self.port, reactor.getReaders())
            self.port.doRead()
            self.assertEqual(len(self.built), 1)

        return deferLater(reactor, balance.DEFER + 0.05, later)
