"""Graceful shutdown of ``ServerService``, driven in memory with a fake clock.

Connections are built straight from the service's factories over
``StringTransportWithDisconnection``, so the tests see exactly what each
client receives and when, with no ports and no sleeping.
"""

from __future__ import annotations

import json
from typing import Any, List, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from pyliteflux.app import Server
from pyliteflux.core.routing import Router
from tests.engines import per_engine

ENDPOINTS = {"http": ["tcp:0:interface=127.0.0.1"], "tcp": ["tcp:0:interface=127.0.0.1"]}
SHUTDOWN_LINE = b'{"type": "shutdown"}\n'


@per_engine
class ShutdownTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.router = Router()
        self.server = Server(router=self.router, reactor=self.clock)
        self.server.config.update(tcp_keep_alive=True, info=False, shutdown_timeout=5.0)
        clock = self.clock

        @self.router.register("/hello")
        def hello(request: Any) -> Any:
            return {"message": "Hello, World!"}

        @self.router.register("/slow")
        def slow(request: Any) -> Any:
            seconds = float(request.query_params.get("seconds", "2"))
            return deferLater(clock, seconds, lambda: {"slept": seconds})

        @self.router.register("wait", protocol="tcp")
        def wait(request: Any) -> Any:
            return deferLater(clock, 1, lambda: {"waited": 1})

        self.service = self.server.make_service(endpoints=ENDPOINTS)
        self.service.startService()
        self.events: List[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def http_client(self) -> Tuple[Any, StringTransportWithDisconnection]:
        site = self.service.listeners[0].factory
        proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransportWithDisconnection()
        transport.protocol = proto
        proto.makeConnection(transport)
        return proto, transport

    def tcp_client(self, port: int = 50000) -> Tuple[Any, StringTransportWithDisconnection]:
        factory = self.service.listeners[1].factory
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        transport = StringTransportWithDisconnection(
            peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        transport.protocol = proto
        proto.makeConnection(transport)
        return proto, transport

    def advance(self, seconds: float, step: float = 0.05) -> None:
        for _ in range(int(round(seconds / step))):
            self.clock.advance(step)

    def logged(self, text: str) -> bool:
        from twisted.logger import formatEvent

        return any(text in formatEvent(e) for e in self.events)

    # -- tests ---------------------------------------------------------------------------

    def test_stops_listening_first(self) -> None:
        self.assertTrue(all(listener.port is not None for listener in self.service.listeners))
        self.service.stopService()
        self.assertTrue(all(listener.port is None for listener in self.service.listeners))

    def test_idle_connections_close_at_once(self) -> None:
        """An idle keep-alive HTTP channel is closed; a TCP client hears why."""
        http, http_t = self.http_client()
        http.dataReceived(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"Hello, World!", http_t.value())
        self.assertTrue(http_t.connected)  # keep-alive: still open
        tcp, tcp_t = self.tcp_client()
        d = self.service.stopService()
        self.assertFalse(http_t.connected)
        self.assertEqual(tcp_t.value(), SHUTDOWN_LINE)
        self.assertFalse(tcp_t.connected)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual([d.open_count() for d in self.service.drainables], [0, 0])

    def test_a_connection_accepted_just_before_gets_to_send_its_request(self) -> None:
        """Accepted, its request not read yet when the shutdown begins (a worker
        retiring on SIGHUP): answered, not closed without a response."""
        http, http_t = self.http_client()
        d = self.service.stopService()
        self.assertTrue(http_t.connected)
        self.advance(0.1)
        http.dataReceived(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http_t.value()
        self.assertTrue(response.startswith(b"HTTP/1.1 200"), response)
        self.advance(0.1)  # then closed as the idle connection it now is
        self.assertFalse(http_t.connected)
        self.successResultOf(d)

    def test_a_connection_that_never_sends_is_closed_after_the_grace(self) -> None:
        from pyliteflux.adapters.common import FRESH_GRACE

        http, http_t = self.http_client()
        d = self.service.stopService()
        self.advance(FRESH_GRACE / 2)
        self.assertTrue(http_t.connected)
        self.advance(FRESH_GRACE)
        self.assertFalse(http_t.connected)
        self.assertEqual(http_t.value(), b"")
        self.successResultOf(d)

    def test_in_flight_request_finishes_then_closes(self) -> None:
        self.server.config.info = True
        http, http_t = self.http_client()
        http.dataReceived(b"GET /slow?seconds=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        tcp, tcp_t = self.tcp_client()
        d = self.service.stopService()
        self.advance(1.0)
        self.assertNoResult(d)
        self.assertEqual(http_t.value(), b"")
        self.assertTrue(http_t.connected)
        self.assertEqual(tcp_t.value(), b"")  # told only once requests are done
        self.advance(1.1)
        response = http_t.value()
        self.assertTrue(response.startswith(b"HTTP/1.1 200"), response)
        self.assertIn(b"Connection: close", response)
        self.assertIn(b'{"slept": 2.0}', response)
        self.assertFalse(http_t.connected)
        self.assertEqual(tcp_t.value(), SHUTDOWN_LINE)
        self.successResultOf(d)
        self.assertTrue(self.logged("shutdown complete"))

    def test_in_flight_tcp_command_is_answered_before_the_shutdown_line(self) -> None:
        tcp, tcp_t = self.tcp_client()
        tcp.dataReceived(b'{"command": "wait", "id": 1}\n')
        d = self.service.stopService()
        self.assertEqual(tcp_t.value(), b"")
        self.advance(1.1)
        lines = tcp_t.value().splitlines(keepends=True)
        self.assertEqual(json.loads(lines[0]), {"waited": 1, "id": 1})
        self.assertEqual(lines[1:], [SHUTDOWN_LINE])
        self.successResultOf(d)

    def test_background_job_push_reaches_client_before_shutdown(self) -> None:
        """Jobs drain before TCP clients are told goodbye, so a push arrives."""
        tcp, tcp_t = self.tcp_client(50001)
        server, clock = self.server, self.clock

        async def job() -> None:
            await deferLater(clock, 1, lambda: None)
            server.push_message("late news", "127.0.0.1:50001")

        server.jobs.submit(job)
        d = self.service.stopService()
        self.advance(1.1)
        self.assertEqual(tcp_t.value().splitlines(keepends=True),
                         [b'{"type": "push", "data": "late news"}\n', SHUTDOWN_LINE])
        self.successResultOf(d)

    def test_stuck_request_is_abandoned_at_the_deadline(self) -> None:
        self.server.config.shutdown_timeout = 1.0
        http, http_t = self.http_client()
        http.dataReceived(b"GET /slow?seconds=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        tcp, tcp_t = self.tcp_client()
        d = self.service.stopService()
        self.advance(0.7)  # the last 0.25 s (timeout / 4) are kept for goodbyes
        self.assertNoResult(d)
        self.assertEqual(tcp_t.value(), b"")
        self.advance(0.1)
        self.assertEqual(tcp_t.value(), SHUTDOWN_LINE)
        self.advance(0.2)
        self.successResultOf(d)
        self.assertFalse(http_t.connected)  # aborted
        self.assertTrue(self.logged("abandoned 1 HTTP request(s) ['GET /slow?seconds=60']"))
        # the aborted request's handler is cancelled (the pipeline logs that)
        self.flushLoggedErrors(CancelledError)

    def test_second_stop_shares_the_first(self) -> None:
        http, http_t = self.http_client()
        http.dataReceived(b"GET /slow?seconds=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = self.service.stopService()
        second = self.service.stopService()
        waiter = self.service.when_stopped()
        self.assertNoResult(second)
        self.advance(1.1)
        self.successResultOf(first)
        self.successResultOf(second)
        self.successResultOf(waiter)

    def test_server_stop_without_owned_reactor_stops_the_service(self) -> None:
        tcp, tcp_t = self.tcp_client()
        d = self.server.stop()
        self.successResultOf(d)
        self.assertEqual(tcp_t.value(), SHUTDOWN_LINE)
        self.assertFalse(self.service.running)
