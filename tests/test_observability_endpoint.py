"""The metrics endpoint: /metrics, /healthz and /readyz on their own
listener; readiness while starting, serving, draining and with the broker
down (in memory, on a fake clock); and the whole of it over real loopback
ports, scraped after real HTTP and TCP traffic."""

from __future__ import annotations

import json
from typing import Any, Tuple

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase

from pyliteflux import Router, Server
from pyliteflux.observability import MetricsListener, Readiness
from pyliteflux.testing import serve

from .test_observability_metrics import FakeBackend

LOOPBACK = "tcp:0:interface=127.0.0.1"
ENDPOINTS = {"http": [LOOPBACK], "tcp": [LOOPBACK]}


def get(site: Any, path: str) -> Tuple[int, bytes, bytes]:
    """``GET path`` on ``site`` in memory: (status, headers, body)."""
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransportWithDisconnection()
    transport.protocol = channel
    channel.makeConnection(transport)
    channel.dataReceived(f"GET {path} HTTP/1.1\r\nHost: metrics\r\n\r\n".encode())
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    transport.loseConnection()
    return status, head, body


class InMemoryTests(TestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.server = Server(router=Router(), reactor=self.clock, info=False,
                             metrics_endpoint=LOOPBACK, shutdown_timeout=5.0)
        self.server.route("/hello")(lambda r: {"message": "Hello, World!"})
        self.gate: defer.Deferred[Any] = defer.Deferred()
        self.server.route("/slow")(lambda r: self.gate)
        self.service = self.server.make_service(endpoints=ENDPOINTS)
        (self.monitor,) = self.service.monitors
        self.site = self.monitor.factory

    def test_the_metrics_listener_is_a_monitor_not_a_drained_listener(self) -> None:
        self.assertIsInstance(self.monitor, MetricsListener)
        self.assertNotIn(self.site, self.service.drainables)
        self.assertEqual([s.side for s in self.service.listeners], ["http", "tcp"])

    def test_ready_only_once_the_listeners_are_up(self) -> None:
        ready = Readiness(self.service, self.server.hub)
        self.assertEqual(ready(), (False, "starting"))
        self.service.startService()
        self.assertEqual(ready(), (True, "ready"))
        self.assertEqual(get(self.site, "/readyz")[0], 200)
        self.assertEqual(json.loads(get(self.site, "/readyz")[2]), {"status": "ready"})
        self.service.stopService()
        self.clock.advance(10)

    def test_listening_reports_the_metrics_port(self) -> None:
        self.service.startService()
        listening = self.successResultOf(self.service.listening())
        self.assertEqual(len(listening.ports["metrics"]), 1)
        self.service.stopService()
        self.clock.advance(10)

    def test_readyz_is_503_while_draining_and_the_endpoint_stops_last(self) -> None:
        self.service.startService()
        http = self.service.listeners[0].factory
        channel = http.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
        client = StringTransportWithDisconnection()
        client.protocol = channel
        channel.makeConnection(client)
        channel.dataReceived(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")  # in flight
        stopped = self.service.stopService()
        self.clock.advance(0.1)
        self.assertNoResult(stopped)
        status, _, body = get(self.site, "/readyz")
        self.assertEqual((status, json.loads(body)), (503, {"status": "draining"}))
        self.assertEqual(get(self.site, "/healthz")[0], 200)
        self.assertTrue(self.monitor.running)
        self.gate.callback({"done": True})
        for _ in range(200):
            self.clock.advance(0.05)
        self.successResultOf(stopped)
        self.assertFalse(self.monitor.running)
        self.assertIn(b'{"done": true}', client.value())

    def test_readyz_is_503_while_the_broker_is_down(self) -> None:
        backend = FakeBackend()
        self.server.hub.backend = backend
        self.service.startService()
        self.assertEqual(get(self.site, "/readyz")[0], 200)
        backend.up = False
        status, _, body = get(self.site, "/readyz")
        self.assertEqual((status, json.loads(body)), (503, {"status": "broker down"}))
        self.assertEqual(get(self.site, "/healthz")[0], 200)
        metrics = text_string_to_metric_families(get(self.site, "/metrics")[2].decode())
        up = [s.value for f in metrics for s in f.samples if s.name == "pyliteflux_broker_up"]
        self.assertEqual(up, [0])
        backend.up = True
        self.assertEqual(get(self.site, "/readyz")[0], 200)
        self.service.stopService()
        self.clock.advance(10)

    def test_metrics_is_the_prometheus_text_format(self) -> None:
        self.service.startService()
        status, head, body = get(self.site, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"Content-Type: text/plain; version=0.0.4", head)
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        self.assertIn("pyliteflux_http_requests", names)
        self.assertEqual(get(self.site, "/other")[0], 404)
        self.service.stopService()
        self.clock.advance(10)


class _Lines(LineReceiver):
    delimiter = b"\n"

    def __init__(self) -> None:
        self.replies: "defer.DeferredQueue[bytes]" = defer.DeferredQueue()

    def lineReceived(self, line: bytes) -> None:
        self.replies.put(line)


class LoopbackTests(TestCase):
    """``python -m pyliteflux --metrics ...`` as a test: real ports."""

    def setUp(self) -> None:
        self.server = Server(router=Router(), info=False, tcp_keep_alive=True,
                             metrics_endpoint=LOOPBACK)
        self.server.route("/hello")(lambda r: {"message": "Hello, World!"})
        self.server.route("/user/{id}")(lambda r: {"id": r.path_params["id"]})
        self.server.route("echo", protocol="tcp")(lambda r: "echo")
        self.gate: defer.Deferred[Any] = defer.Deferred()
        self.entered: defer.Deferred[Any] = defer.Deferred()

        @self.server.route("/slow")
        def slow(request: Any) -> Any:
            self.entered.callback(None)
            return self.gate

    async def scrape(self, port: int) -> Any:
        response = await treq.get(f"http://127.0.0.1:{port}/metrics", persistent=False)
        self.assertEqual(response.code, 200)
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(await response.text())
                for s in f.samples}

    async def test_scrape_after_real_traffic_then_readyz_during_shutdown(self) -> None:
        running = await serve(self.server)
        port = running.listening.metrics_port
        self.assertNotIn(port, (running.http_port, running.tcp_port))
        for path in ("/hello", "/hello", "/user/7", "/missing"):
            response = await treq.get(running.url(path), persistent=False)
            await response.content()
        client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1",
                                                          running.tcp_port), _Lines())
        client.sendLine(b'{"command": "echo"}')
        client.sendLine(b'{"command": "whatever-123"}')
        await client.replies.get()
        await client.replies.get()
        seen = await self.scrape(port)
        key = "pyliteflux_http_requests_total"
        self.assertEqual(seen[(key, (("method", "GET"), ("route", "/hello"),
                                     ("status", "200")))], 2)
        self.assertEqual(seen[(key, (("method", "GET"), ("route", "/user/{id}"),
                                     ("status", "200")))], 1)
        self.assertEqual(seen[(key, (("method", "GET"), ("route", "<unmatched>"),
                                     ("status", "404")))], 1)
        cmd = "pyliteflux_commands_total"
        self.assertEqual(seen[(cmd, (("command", "echo"), ("outcome", "ok"),
                                     ("transport", "tcp")))], 1)
        self.assertEqual(seen[(cmd, (("command", "<unknown>"), ("outcome", "error"),
                                     ("transport", "tcp")))], 1)
        self.assertEqual(seen[("pyliteflux_connections", (("transport", "tcp"),))], 1)
        self.assertEqual(seen[("pyliteflux_push_messages_total", (("kind", "broadcast"),))], 0)

        ready = await treq.get(f"http://127.0.0.1:{port}/readyz", persistent=False)
        self.assertEqual(ready.code, 200)
        await ready.content()

        slow = treq.get(running.url("/slow"), persistent=False)
        await self.entered
        stopping = running.stop()
        ready = await treq.get(f"http://127.0.0.1:{port}/readyz", persistent=False)
        self.assertEqual((ready.code, await ready.json()), (503, {"status": "draining"}))
        health = await treq.get(f"http://127.0.0.1:{port}/healthz", persistent=False)
        self.assertEqual(health.code, 200)
        await health.content()
        self.gate.callback({"slow": "done"})
        response = await slow
        self.assertEqual(await response.json(), {"slow": "done"})
        client.transport.loseConnection()
        await stopping
        # the endpoint stopped last: nothing listens there any more
        with self.assertRaises(ConnectionRefusedError):
            await deferLater(reactor, 0, lambda: None)
            await treq.get(f"http://127.0.0.1:{port}/healthz", persistent=False)
