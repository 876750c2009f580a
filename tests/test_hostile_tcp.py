"""Hostile TCP input: trickled lines, floods, dead peers (on top of test_tcp_protocol)."""

import json
import socket

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import Router, Server
from pyliteflux.testing import TestClient, serve
from tests.tcp_client import LineClient


def app(**config):
    server = Server(router=Router(), info=False, tcp_keep_alive=True, **config)
    server.route("echo", protocol="tcp")(lambda r: {"len": len(str(r.data))})
    server.route("mirror", protocol="tcp")(lambda r: r.data)
    return server


class TrickleTests(SynchronousTestCase):
    def test_line_trickled_in_16_byte_pieces_is_buffered_without_rejoining(self):
        server = app(max_line_length=65536)
        conn = TestClient(server).connect()
        line = json.dumps({"command": "echo", "data": "x" * 65000}).encode() + b"\n"
        joins = []
        proto = conn.protocol
        for i in range(0, len(line), 16):
            conn.send_bytes(line[i:i + 16])
            joins.append(len(proto._parts))
        # the pending pieces are kept as a list and joined once, at the newline
        self.assertEqual(max(joins), (len(line) - 1) // 16)
        self.assertEqual(conn.replies, [{"len": 65000}])

    def test_trickled_line_over_the_limit_is_refused(self):
        server = app(max_line_length=1000)
        conn = TestClient(server).connect()
        for _ in range(100):
            conn.send_bytes(b"a" * 16)
            if conn.closed:
                break
        self.assertTrue(conn.closed)
        self.assertEqual(conn.replies, [{"error": "Line too long", "limit": 1000}])


def trickle(port, payload, piece=16):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        for i in range(0, len(payload), piece):
            s.sendall(payload[i:i + piece])
        return s.makefile("rb").readline()


class LoopbackTests(TestCase):
    async def test_other_clients_answered_while_one_trickles(self):
        running = await serve(app(), protocol="tcp")
        self.addCleanup(running.stop)
        payload = json.dumps({"command": "echo", "data": "y" * 60000}).encode() + b"\n"
        trickling = deferToThread(trickle, running.tcp_port, payload)
        other = await LineClient.connect(running.tcp_port)
        self.addCleanup(other.close)
        for _ in range(20):
            self.assertEqual(await other.request({"command": "echo", "data": 1}), {"len": 1})
        line = await trickling
        self.assertEqual(json.loads(line), {"len": 60000})

    async def test_keepalive_probes_enabled(self):
        server = app()
        running = await serve(server, protocol="tcp")
        self.addCleanup(running.stop)
        client = await LineClient.connect(running.tcp_port)
        self.addCleanup(client.close)
        await client.request({"command": "echo"})
        (conn,) = server.connections.values()
        sock = conn.transport.getHandle()
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)

    async def test_flood_without_reading_pauses_then_drops(self):
        server = app(max_output_buffer=128 * 1024, max_pending_per_connection=8)
        running = await serve(server, protocol="tcp")
        self.addCleanup(running.stop)
        flood = json.dumps({"command": "mirror", "data": "z" * 4000}).encode() + b"\n"

        def flood_without_reading(port):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sent = 0
            try:
                for _ in range(20000):
                    s.sendall(flood)
                    sent += len(flood)
            except OSError:
                pass  # the server stopped reading us, or dropped us
            finally:
                s.close()
            return sent

        sent = await deferToThread(flood_without_reading, running.tcp_port)
        self.assertLess(sent, 20000 * len(flood))  # we were not read without bound
        other = await LineClient.connect(running.tcp_port)
        self.addCleanup(other.close)
        self.assertEqual(await other.request({"command": "echo", "data": 1}), {"len": 1})


