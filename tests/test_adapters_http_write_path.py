"""Responses arrive whole over real loopback sockets: every kind of HTTP response, large
bodies to a slow reader, HTTP/1.0 (guards against write-path regressions)."""

from twisted.internet import reactor, task
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from pyliteflux import Router, Server, StreamResponse
from pyliteflux.testing import serve
from tests.engines import per_engine
from tests.tcp_client import exchange


def app():
    server = Server(router=Router(), info=False)
    server.route("/hello")(lambda r: {"message": "Hello, World!"})
    server.route("/none")(lambda r: None)
    server.route("/big")(lambda r: b"x" * (8 * 1024 * 1024))

    @server.route("/later")
    def later(request):
        return task.deferLater(reactor, 0.01, lambda: "later")

    @server.route("/stream")
    def stream(request):
        return StreamResponse((f"chunk{i}\n" for i in range(3)), content_type="text/plain")

    return server


@per_engine
class HTTPWritePathTests(TestCase):
    async def start(self):
        running = await serve(app(), protocol="http")
        self.addCleanup(running.stop)
        return running.http_port

    async def test_headers_and_body_arrive_for_each_kind_of_response(self):
        port = await self.start()
        req = (b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
               b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = await deferToThread(exchange, port, req)
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 4)
        self.assertEqual(out.count(b"HTTP/1.1 204 No Content"), 1)
        self.assertIn(b'\r\n\r\n{"message": "Hello, World!"}HTTP/1.1 200 OK', out)  # then HEAD
        self.assertIn(b"Content-Length: 28\r\n", out)
        self.assertIn(b"later", out)
        self.assertTrue(out.endswith(b"chunk2\n\r\n0\r\n\r\n"), out[-60:])

    async def test_large_body_to_a_slow_reader_is_complete(self):
        port = await self.start()
        out = await deferToThread(exchange, port,
                                  b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                  wait=0.3)
        head, body = out.split(b"\r\n\r\n", 1)
        self.assertIn(b"Content-Length: 8388608", head)
        self.assertEqual(body, b"x" * (8 * 1024 * 1024))

    async def test_http_1_0(self):
        port = await self.start()
        out = await deferToThread(exchange, port, b"GET /hello HTTP/1.0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.0 200 OK"), out)
        self.assertTrue(out.endswith(b'{"message": "Hello, World!"}'))
