"""Server lifecycle: listen on loopback, run() in a subprocess, stop, Logger."""

import os
import re
import signal
import subprocess
import sys
import textwrap

import treq
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import Logger, Router, Server
from pyliteflux.testing import serve
from tests.engines import per_engine
from tests.tcp_client import LineClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hello_server(**config):
    server = Server(router=Router(), info=False, **config)
    server.route("/hello")(lambda r: {"message": "Hello, World!"})
    server.route("ping", protocol="tcp")(lambda r: {"pong": r.data})
    return server


@per_engine
class ListenTests(TestCase):
    async def test_http_and_tcp_on_free_loopback_ports(self):
        running = await serve(hello_server(tcp_keep_alive=True))
        self.addCleanup(running.stop)
        self.assertTrue(running.http_port and running.tcp_port)
        response = await treq.get(running.url("/hello"), persistent=False)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(await response.json(), {"message": "Hello, World!"})
        client = await LineClient.connect(running.tcp_port)
        self.addCleanup(client.close)
        self.assertEqual(await client.request({"command": "ping", "data": 1, "id": 2}),
                         {"pong": 1, "id": 2})

    async def test_one_side_only(self):
        running = await serve(hello_server(), protocol="http")
        self.addCleanup(running.stop)
        self.assertIsNone(running.tcp_port)
        self.assertTrue(running.http_port)

    async def test_port_in_use_errbacks_and_cleans_up(self):
        first = await serve(hello_server())
        self.addCleanup(first.stop)
        second = hello_server(http_port=first.http_port, tcp_port=0)
        with self.assertRaises(CannotListenError):
            await second.listen()
        self.flushLoggedErrors(CannotListenError)

    async def test_stop_stops_listening_and_closes_tcp_clients(self):
        running = await serve(hello_server(tcp_keep_alive=True))
        client = await LineClient.connect(running.tcp_port)
        await client.request({"command": "ping"})
        await running.stop()
        await client.closed
        self.assertIn({"type": "shutdown"}, client.lines)
        with self.assertRaises(ConnectionRefusedError):
            await treq.get(running.url("/hello"), persistent=False)


class RunTests(SynchronousTestCase):
    def test_run_blocks_serves_and_stops_on_sigterm(self):
        script = textwrap.dedent("""
            from pyliteflux import Server, Route
            server = Server()
            server.config.update(http_port=0, tcp_port=0)

            @Route.register("/hello", method="GET")
            def hello(request):
                return {"message": "Hello, World!"}

            server.run()
            print("run returned", flush=True)
        """)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, text=True)
        try:
            port = None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                m = re.search(r"HTTP listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    port = int(m.group(1))
                    break
            self.assertIsNotNone(port, "".join(lines))
            out = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/hello"],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.stdout, '{"message": "Hello, World!"}')
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=15)
            self.assertEqual(proc.returncode, 0, rest)
            self.assertIn("run returned", rest)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_run_raises_when_it_cannot_listen(self):
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        self.addCleanup(sock.close)
        port = sock.getsockname()[1]
        script = textwrap.dedent(f"""
            from pyliteflux import Server
            server = Server(info=False, http_port={port}, tcp_port=0)
            try:
                server.run()
            except Exception as exc:
                print("raised", type(exc).__name__)
        """)
        env = dict(os.environ, PYTHONPATH=ROOT)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=env, timeout=30)
        self.assertIn("raised CannotListenError", out.stdout, out.stderr)


class LoggerTests(SynchronousTestCase):
    def test_logger_emits_through_twisted_logger(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        Logger.info("Request processed in {braces} 0.01s")
        Logger.warning("careful")
        Logger("my.app").error("bad")
        from twisted.logger import formatEvent

        texts = [formatEvent(e) for e in events]
        self.assertIn("Request processed in {braces} 0.01s", texts)
        self.assertIn("careful", texts)
        self.assertEqual(events[-1]["log_namespace"], "my.app")
