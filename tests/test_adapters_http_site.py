"""Our Site's shortened request processing answers byte for byte what Twisted's
own ``Request.process`` answers for the same resource (Date aside).

``TwistedRequest.process`` skips the resource walk and writes the common
dict response itself; every other response goes through the resource's
general path. Each request below is sent to two Sites over the same app —
ours, and one whose requests take Twisted's way — and the raw responses
are compared.
"""

import re

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.http import datetimeToString

from pyliteflux import HTTPResponse, Middleware, Router, Server, StreamResponse, g
from pyliteflux.adapters.http import site as http_site
from pyliteflux.adapters.http.channel import GuardedRequest
from pyliteflux.adapters.http.site import Site, TwistedRequest, http_date
from tests.engines import per_engine


class TwistedWaySite(Site):
    requestFactory = GuardedRequest  # Twisted's Request.process


class Tag(Middleware):
    def process_request(self, request):
        g.tag = "t"

    def process_response(self, request, response):
        if isinstance(response, dict):
            response = dict(response, tag=g.tag)
        return response


def app(**config):
    server = Server(router=Router(), info=False, **config)
    route = server.route
    route("/hello")(lambda r: {"message": "Hello, World!"})
    route("/list")(lambda r: [1, 2])
    route("/str")(lambda r: "héllo")
    route("/bytes")(lambda r: b"\x00")
    route("/none")(lambda r: None)
    route("/tuple")(lambda r: ({"error": "no"}, 403, {"X-A": "1"}))
    route("/resp")(lambda r: HTTPResponse("<b>", headers={"Content-Type": "text/html"}))
    route("/later")(lambda r: defer.succeed({"later": True}))
    route("/items/{id:int}")(lambda r: {"id": r.path_params["id"], "q": r.query_params.get("q")})
    route("/echo", method="POST")(lambda r: r.json_data)
    route("/form", method="POST")(lambda r: r.form_data)
    route("/boom")(lambda r: 1 / 0)
    route("/nan")(lambda r: {"x": float("nan")})
    route("/object")(lambda r: {"x": object()})

    @route("/raw-header")
    def raw_header(request):
        request.raw.setHeader(b"X-Set-By-Handler", b"yes")
        request.raw.addCookie(b"k", b"v")
        return {"ok": True}

    @route("/raw-type")
    def raw_type(request):
        request.raw.setHeader(b"Content-Type", b"application/problem+json")
        return {"ok": True}

    @route("/paths/{rest:path}")
    def paths(request):
        return {"postpath": [p.decode("latin-1") for p in request.raw.postpath],
                "prepath": request.raw.prepath}

    route("/own-defaults")(lambda r: ("x", 200, {"Server": "mine", "Date": "yesterday"}))
    route("/own-framing")(lambda r: ("x", 200, {"Transfer-Encoding": "chunked",
                                                "Content-Length": "99", "X-Kept": "1"}))
    route("/bad-stream")(lambda r: StreamResponse(iter([b"a"]), status=999))

    @route("/job")
    def job(request):
        request.bg.add(lambda: None)
        return {"queued": True}

    return server


REQUESTS = [
    b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    b"head /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://x/hello HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /hello HTTP/1.0\r\n\r\n",
    b"GET /list HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /str HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /bytes HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /tuple HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /resp HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /items/7?q=a%20b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /items/x HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n{"a": 1}',
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x}",
    b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /nan HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /object HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /raw-header HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /raw-type HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /paths/a%2Fb/c%20d HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /job HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /own-defaults HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /own-framing HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /bad-stream HTTP/1.1\r\nHost: x\r\n\r\n",
    (b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\n"
     b"Content-Length: 3\r\n\r\nabc"),
]


def _normalise(response):
    # the two Sites answer at different instants; their request ids differ
    response = re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", response)
    return re.sub(rb"(?i)\r\nX-Request-ID: [^\r]*", b"\r\nX-Request-ID: -", response)


def exchange(site_class, server, request):
    site = site_class(server.resource, reactor=Clock())
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 12345))
    transport = StringTransport()
    channel.makeConnection(transport)
    try:
        channel.dataReceived(request)
        return transport.value()
    finally:
        channel.connectionLost(None)


class FastPathParityTests(TestCase):
    def check_parity(self, server):
        self.patch(server.jobs, "submit_all", lambda jobs: None)
        for request in REQUESTS:
            ours = exchange(Site, server, request)
            twisted = exchange(TwistedWaySite, server, request)
            self.assertTrue(ours.startswith(b"HTTP/1."), (request, ours))
            self.assertEqual(_normalise(ours), _normalise(twisted), request)
        # /boom, /nan, /object and /bad-stream, each logged once per Site
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError, ValueError, TypeError)), 8)

    def test_same_bytes_as_twisteds_process(self):
        self.check_parity(app())

    def test_same_bytes_with_middleware(self):
        server = app()
        server.add_middleware(Tag())
        self.check_parity(server)

    def test_same_bytes_with_request_ids(self):
        self.check_parity(app(request_id_header=True))

    def test_same_bytes_when_headers_are_not_a_dict(self):
        """On a Twisted whose ``Headers`` differ inside, ours is Twisted's way."""
        self.patch(http_site, "FAST_HEADERS", False)
        self.check_parity(app())

    def test_the_fast_path_is_taken(self):
        """(so the parity above compares two different code paths)"""
        server = app()
        calls = []
        self.patch(server.resource, "render", lambda request: calls.append(request))
        self.assertTrue(http_site.FAST_HEADERS)
        out = exchange(Site, server, REQUESTS[0])
        self.assertEqual(calls, [])
        self.assertIn(b'{"message": "Hello, World!"}', out)
        self.assertIsInstance(Site.requestFactory, type)
        self.assertTrue(issubclass(Site.requestFactory, TwistedRequest))

    def test_headers_of_the_common_response(self):
        out = exchange(Site, app(), REQUESTS[0])
        head, body = out.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 200 OK")
        names = [line.split(b":")[0] for line in lines[1:]]
        self.assertEqual(names, [b"Server", b"Date", b"Content-Type", b"Content-Length"])
        self.assertIn(b"Content-Length: 28", lines)
        self.assertIn(b"Content-Type: application/json", lines)
        self.assertEqual(body, b'{"message": "Hello, World!"}')


@per_engine
class ResponseDetailTests(TestCase):
    def test_head_in_any_case_has_no_body(self):
        for method in (b"HEAD", b"head", b"Head"):
            out = exchange(Site, app(), method + b" /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 200 OK"), out)
            self.assertIn(b"Content-Length: 28\r\n", out)
            self.assertTrue(out.endswith(b"\r\n\r\n"), (method, out))

    def test_absolute_form_target_is_served(self):
        """RFC 9112 §3.2.2: a server must accept ``GET http://host/path``."""
        server = app()
        for target in (b"http://x/items/3?q=z", b"HTTP://x:80/items/3?q=z",
                       b"https://x/items/3?q=z"):
            out = exchange(Site, server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 200 OK"), out)
            self.assertTrue(out.endswith(b'{"id": 3, "q": "z"}'), out)

    def test_handlers_own_server_and_date_replace_the_defaults(self):
        out = exchange(Site, app(), b"GET /own-defaults HTTP/1.1\r\nHost: x\r\n\r\n")
        head = out.split(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertEqual([h for h in head if h.startswith(b"Server:")], [b"Server: mine"])
        self.assertEqual([h for h in head if h.startswith(b"Date:")], [b"Date: yesterday"])

    def test_handlers_framing_headers_are_dropped(self):
        out = exchange(Site, app(), b"GET /own-framing HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = out.split(b"\r\n\r\n", 1)
        self.assertNotIn(b"Transfer-Encoding", head)
        self.assertIn(b"\r\nContent-Length: 1\r\n", head + b"\r\n")
        self.assertNotIn(b"99", head)
        self.assertIn(b"X-Kept: 1", head)
        self.assertEqual(body, b"x")

    def test_stream_with_a_bad_status_is_a_500_and_the_connection_goes_on(self):
        out = exchange(Site, app(), b"GET /bad-stream HTTP/1.1\r\nHost: x\r\n\r\n"
                                    b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 500 "), out)
        self.assertIn(b'{"error": "Internal Server Error"}HTTP/1.1 200 OK', out)
        self.assertTrue(out.endswith(b'{"message": "Hello, World!"}'), out)
        self.flushLoggedErrors(TypeError)

    def test_cookies_may_repeat(self):
        server = app()
        server.route("/cookies")(lambda r: ("x", 200, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]))
        out = exchange(Site, server, b"GET /cookies HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n", out)

    def test_bad_multipart_body_is_a_json_400_that_middleware_sees(self):
        server = app()
        seen = []

        class Watch(Middleware):
            def process_response(self, request, response):
                seen.append(getattr(response, "status", None))
                return response

        server.add_middleware(Watch())
        for ctype in (b"multipart/form-data", b"multipart/form-data; boundary=XX"):
            out = exchange(Site, server, b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           + ctype + b"\r\nContent-Length: 3\r\n\r\nabc")
            self.assertTrue(out.startswith(b"HTTP/1.1 400 Bad Request"), out)
            self.assertIn(b"Content-Type: application/json", out)
            self.assertIn(b'{"error": ', out)
        self.assertEqual(seen, [400, 400])


    def test_access_log_lines_carry_their_namespace(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        server = app()
        server.config.info = True
        exchange(Site, server, REQUESTS[0])
        access = [e for e in events if e.get("log_namespace") == "pyliteflux.access"]
        self.assertEqual(len(access), 1, events)
        self.assertEqual((access[0]["method"], access[0]["uri"], access[0]["code"]),
                         ("GET", "/hello", 200))


class HTTPDateTests(TestCase):
    def test_matches_twisted_and_changes_with_the_second(self):
        now = [1_700_000_000.25]
        self.patch(http_site, "time", lambda: now[0])
        first = http_date()
        self.assertEqual(first, datetimeToString(1_700_000_000))
        now[0] = 1_700_000_000.9
        self.assertIs(http_date(), first)  # formatted once per second
        now[0] = 1_700_000_001.0
        self.assertEqual(http_date(), datetimeToString(1_700_000_001))
        self.assertNotEqual(http_date(), first)
