"""Hostile HTTP input: body limits, slow clients, connection caps, odd URLs, bad JSON."""


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import Router, Server
from pyliteflux.adapters import http_factory
from pyliteflux.testing import TestClient, serve
from tests.engines import per_engine
from tests.tcp_client import exchange, send_then_eof


def app(**config):
    server = Server(router=Router(), info=False, **config)

    @server.route("/echo", method=["GET", "POST", "PUT"])
    def echo(request):
        return {"json": request.json_data, "form": request.form_data, "len": len(request.body),
                "query": request.query_params}

    @server.route("/inject")
    def inject(request):
        return "x", 200, {"X-A": "a\r\nSet-Cookie: evil=1", "X-B": "b\nX-Evil: 1"}

    @server.route("/files/*")
    def files(request):
        return {"rest": request.path_params["*"]}

    return server


@per_engine
class LoopbackHostileTests(TestCase):
    async def start(self, **config):
        running = await serve(app(**config), protocol="http")
        self.addCleanup(running.stop)
        return running.http_port

    async def test_content_length_over_limit_is_413_before_the_body(self):
        port = await self.start(max_body_size=1000)
        head = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000000\r\n\r\n")
        out = await deferToThread(exchange, port, head)  # no body sent at all
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out)
        self.assertIn(b'{"error": "Payload Too Large"}', out)

    async def test_chunked_body_growing_past_limit_is_cut_off(self):
        port = await self.start(max_body_size=1000)
        body = b"".join(b"%x\r\n%s\r\n" % (300, b"a" * 300) for _ in range(10)) + b"0\r\n\r\n"
        req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        out = await deferToThread(exchange, port, req)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out)
        self.assertEqual(out.count(b"HTTP/1.1 "), 1, out)  # and nothing after it

    async def test_body_within_limit_is_fine(self):
        port = await self.start(max_body_size=1000)
        req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\nConnection: close\r\n"
               b"\r\n" + b"a" * 900)
        out = await deferToThread(exchange, port, req)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
        self.assertIn(b'"len": 900', out)

    async def test_odd_paths_and_queries_never_500(self):
        port = await self.start()
        for target in (b"/echo?q=%ff", b"/echo?q=%zz", b"/echo?q=%", b"/echo%2F", b"/ech%6F",
                       b"/files/%2e%2e/%2e%2e/etc/passwd", b"/files/../../x", b"/%00",
                       b"/\xff\xfe", b"/echo?\xff=1", b"/<script>alert(1)</script>",
                       b"/files/a%00b"):
            req = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            out = await deferToThread(exchange, port, req)
            status = int(out.split(b" ", 2)[1])
            self.assertLess(status, 500, (target, out))
            self.assertNotIn(b"<script>", out)

    async def test_header_injection_impossible(self):
        port = await self.start()
        req = b"GET /inject HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = await deferToThread(exchange, port, req)
        head = out.split(b"\r\n\r\n", 1)[0]
        lines = head.split(b"\r\n")
        self.assertFalse(any(line.lower().startswith(b"set-cookie") for line in lines), head)
        self.assertFalse(any(line.lower().startswith(b"x-evil") for line in lines), head)

    async def test_pipelined_requests_answered_in_order(self):
        port = await self.start()
        reqs = b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
        reqs += b"GET /echo?n=last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = await deferToThread(exchange, port, reqs)
        order = [seg.split(b'"}', 1)[0] for seg in out.split(b'"n": "')[1:]]
        self.assertEqual(order, [b"0", b"1", b"2", b"3", b"4", b"last"])


@per_engine
class SlowClientTests(SynchronousTestCase):
    """Deadlines driven by a Clock: no waiting."""

    def channel(self, **config):
        server = app(**config)
        clock = task.Clock()
        site = http_factory(server.adapter_context, reactor=clock)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        transport = StringTransport()
        channel.makeConnection(transport)
        self.server = server
        return channel, transport, clock, site

    def test_headers_dripped_too_slowly_are_cut_off(self):
        channel, transport, clock, _ = self.channel(header_timeout=20)
        for byte in b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ":
            channel.dataReceived(bytes([byte]))
            clock.advance(1)  # each byte resets Twisted's idle timeout...
        clock.advance(1)  # ...but the header deadline (20 s) has passed
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408"))
        self.assertTrue(transport.disconnecting)

    def test_what_follows_a_rejection_is_dropped_not_buffered(self):
        channel, transport, _, _ = self.channel(max_body_size=10)
        channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413"))
        for _ in range(100):  # (a TLS transport keeps delivering until close_notify)
            channel.dataReceived(b"x" * 10_000 + b"\r\n")
        self.assertEqual(len(getattr(channel, "_buffer", b"")), 0)

    def test_chunked_body_over_limit_never_reaches_the_handler(self):
        channel, transport, _, site = self.channel(max_body_size=10)
        ran = []
        self.server.route("/count", method="POST")(lambda r: ran.append(1) or {"n": 1})
        channel.dataReceived(b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                             b"\r\n\r\n14\r\n" + b"a" * 20 + b"\r\n0\r\n\r\n")
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out)
        self.assertEqual(out.count(b"HTTP/1.1 "), 1, out)
        self.assertEqual(ran, [])

    def test_over_long_request_line_is_414(self):
        channel, transport, _, _ = self.channel()
        channel.dataReceived(b"GET /echo?q=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 414 URI Too Long"), out[:80])
        self.assertTrue(out.endswith(b'{"error": "URI Too Long"}'), out)
        self.assertTrue(transport.disconnecting)

    def test_over_long_header_line_is_431(self):
        channel, transport, _, _ = self.channel()
        channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000)
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), out[:80])
        self.assertIn(b'{"error": "Request Header Fields Too Large"}', out)
        self.assertTrue(transport.disconnecting)

    def test_too_many_or_too_large_headers_are_431(self):
        for headers in (b"".join(b"X-%d: a\r\n" % i for i in range(600)),
                        b"".join(b"X-%d: %s\r\n" % (i, b"a" * 8000) for i in range(3))):
            channel, transport, _, _ = self.channel()
            channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            out = transport.value()
            self.assertTrue(out.startswith(b"HTTP/1.1 431 "), out[:80])
            self.assertIn(b'{"error": "Request Header Fields Too Large"}', out)
            self.assertTrue(transport.disconnecting)

    def test_over_long_line_after_a_request_is_431_and_the_first_is_answered(self):
        channel, transport, _, _ = self.channel()
        channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /echo HTTP/1.1\r\nX-Big: " + b"a" * 20000)
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK"), out[:80])
        self.assertIn(b"HTTP/1.1 431 ", out)

    def test_malformed_requests_get_a_json_400_and_close(self):
        for raw in (b"GET /user/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"NOT A REQUEST\r\n\r\n",
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"zz\r\n"):
            channel, transport, _, _ = self.channel()
            channel.dataReceived(raw)
            out = transport.value()
            self.assertTrue(out.startswith(b"HTTP/1.1 400 Bad Request"), (raw, out))
            self.assertTrue(out.endswith(b'{"error": "Bad Request"}'), (raw, out))
            self.assertTrue(transport.disconnecting, raw)

    def test_star_target(self):
        channel, transport, _, _ = self.channel()
        channel.dataReceived(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 405 Method Not Allowed"), out)
        self.assertIn(b"Allow: OPTIONS\r\n", out)
        self.assertTrue(out.endswith(b'{"error": "Method Not Allowed"}'), out)
        transport.clear()
        channel.dataReceived(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"), transport.value())

    def test_prompt_headers_are_fine(self):
        channel, transport, clock, _ = self.channel(header_timeout=20)
        channel.dataReceived(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        clock.advance(30)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200"))

    def test_slow_body_is_cut_off(self):
        channel, transport, clock, _ = self.channel(min_body_rate=500)
        channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(10):
            channel.dataReceived(b"a" * 100)  # 100 bytes/s, under 500 bytes/s
            clock.advance(1)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408"))
        self.assertTrue(transport.disconnecting)

    def test_steady_body_is_fine(self):
        channel, transport, clock, _ = self.channel(min_body_rate=500)
        channel.dataReceived(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 30000\r\n\r\n")
        for _ in range(30):
            channel.dataReceived(b"a" * 1000)
            clock.advance(1)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200"), transport.value()[:100])

    def test_connection_caps(self):
        server = app(max_http_connections=2)
        site = http_factory(server.adapter_context, reactor=task.Clock())
        addr = IPv4Address("TCP", "10.0.0.1", 1)
        first = site.buildProtocol(addr)
        second = site.buildProtocol(addr)
        self.assertIsNotNone(first)
        self.assertIsNotNone(second)
        self.assertIsNone(site.buildProtocol(addr))
        first.makeConnection(StringTransport())
        first.connectionLost(None)
        self.assertIsNotNone(site.buildProtocol(addr))

    def test_per_address_cap(self):
        server = app(max_http_connections_per_ip=1)
        site = http_factory(server.adapter_context, reactor=task.Clock())
        self.assertIsNotNone(site.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1)))
        self.assertIsNone(site.buildProtocol(IPv4Address("TCP", "10.0.0.1", 2)))
        self.assertIsNotNone(site.buildProtocol(IPv4Address("TCP", "10.0.0.2", 1)))


@per_engine
class BadJSONTests(TestCase):
    async def test_bad_json_bodies_are_400(self):
        client = TestClient(app())
        bodies = [b"\xff\xfe{}", b"NaN", b"[NaN]", b"1e400", b"9" * 5000, b"[" * 100000,
                  b'"\\udc00"', b'{"a": "\\ud800"}', b"", b"   ", b"{", b"[1,]", b"{'a': 1}"]
        for body in bodies:
            r = await client.post("/echo", data=body, headers={"Content-Type": "application/json"})
            self.assertEqual(r.code, 400, body[:20])
            self.assertIn("error", r.json())

    async def test_valid_surrogate_pair_accepted(self):
        client = TestClient(app())
        r = await client.post("/echo", data=b'{"e": "\\ud83d\\ude00"}',
                              headers={"Content-Type": "application/json"})
        self.assertEqual(r.json()["json"], {"e": "\U0001F600"})


@per_engine
class AdapterPropertyTests(TestCase):
    # one test method, run per engine by a subclass: a different executor on purpose
    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.differing_executors])
    @given(query=st.text(max_size=40), body=st.binary(max_size=200),
           ctype=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=b", "text/plain", ""]),
           header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                          max_size=30))
    def test_any_input_gives_a_non_5xx_response(self, query, body, ctype, header):
        client = TestClient(app())
        from urllib.parse import quote

        headers = {"X-Anything": header}
        if ctype:
            headers["Content-Type"] = ctype
        d = client.post("/echo?" + quote(query, safe="=&%"), data=body, headers=headers)
        responses = []
        d.addCallback(responses.append)
        # the app is synchronous: the response is there without spinning the reactor
        self.assertEqual(len(responses), 1)
        self.assertLess(responses[0].code, 500, (query, body, ctype))




@per_engine
class HalfCloseTests(TestCase):
    async def test_request_answered_after_client_half_closes(self):
        server = app()

        @server.route("/later")
        def later(request):
            return task.deferLater(reactor, 0.05, lambda: "later")

        running = await serve(server, protocol="http")
        self.addCleanup(running.stop)

        out = await deferToThread(send_then_eof, running.http_port,
                                  b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
        self.assertTrue(out.endswith(b"later"), out)
