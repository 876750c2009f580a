"""The HTTP adapter: request parsing, every row of SPEC §5's response table, errors."""

import datetime
import json

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from pyliteflux import HTTPJSONResponse, HTTPResponse, Router, Server
from pyliteflux.testing import TestClient
from tests.engines import per_engine


def make():
    server = Server(router=Router(), info=False)
    return server, TestClient(server)


@per_engine
class ResponseTableTests(TestCase):
    def setUp(self):
        self.server, self.client = make()
        route = self.server.route

        route("/dict")(lambda r: {"message": "Hello, World!"})
        route("/list")(lambda r: [1, 2, 3])
        route("/str")(lambda r: "héllo")
        route("/bytes")(lambda r: b"\x00\x01")
        route("/none")(lambda r: None)
        route("/tuple2")(lambda r: ({"error": "Access denied"}, 403))
        route("/tuple3")(lambda r: ("created", 201, {"X-Thing": "1"}))
        route("/resp")(lambda r: HTTPResponse("teapot", status=418, headers={"X-A": "b"}))
        route("/resp-ct")(lambda r: HTTPResponse("<b>x</b>", headers={"Content-Type": "text/html"}))
        route("/jsonresp")(lambda r: HTTPJSONResponse(
            data={"error": "Not Found", "code": "404"}, status=404,
            headers={"X-Error-Type": "NotFound"}))
        route("/object")(lambda r: object())
        route("/badstatus")(lambda r: ("x", 99))
        route("/nan")(lambda r: {"x": float("nan")})

        class CustomEncoder(json.JSONEncoder):
            def default(self, obj):
                if isinstance(obj, datetime.datetime):
                    return obj.isoformat()
                return super().default(obj)

        route("/custom")(lambda r: HTTPJSONResponse(
            data={"timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5), "message": "Custom"},
            json_encoder=CustomEncoder, headers={"Content-Type": "application/json"}))

    async def test_dict_is_json(self):
        r = await self.client.get("/dict")
        self.assertEqual(r.code, 200)
        self.assertEqual(r.header("content-type"), "application/json")
        self.assertEqual(r.body, b'{"message": "Hello, World!"}')

    async def test_list_is_json(self):
        r = await self.client.get("/list")
        self.assertEqual((r.code, r.json()), (200, [1, 2, 3]))
        self.assertEqual(r.header("content-type"), "application/json")

    async def test_str_is_text(self):
        r = await self.client.get("/str")
        self.assertEqual(r.header("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(r.text(), "héllo")

    async def test_bytes_are_octet_stream(self):
        r = await self.client.get("/bytes")
        self.assertEqual(r.header("content-type"), "application/octet-stream")
        self.assertEqual(r.body, b"\x00\x01")

    async def test_none_is_204(self):
        r = await self.client.get("/none")
        self.assertEqual(r.code, 204)
        self.assertEqual(r.body, b"")
        self.assertIsNone(r.header("content-length"))

    async def test_tuple_with_status(self):
        r = await self.client.get("/tuple2")
        self.assertEqual((r.code, r.json()), (403, {"error": "Access denied"}))

    async def test_tuple_with_headers(self):
        r = await self.client.get("/tuple3")
        self.assertEqual((r.code, r.text(), r.header("x-thing")), (201, "created", "1"))

    async def test_http_response(self):
        r = await self.client.get("/resp")
        self.assertEqual((r.code, r.text(), r.header("X-A")), (418, "teapot", "b"))
        r = await self.client.get("/resp-ct")
        self.assertEqual(r.header("content-type"), "text/html")

    async def test_http_json_response(self):
        r = await self.client.get("/jsonresp")
        self.assertEqual(r.code, 404)
        self.assertEqual(r.json(), {"error": "Not Found", "code": "404"})
        self.assertEqual(r.header("x-error-type"), "NotFound")

    async def test_custom_json_encoder(self):
        r = await self.client.get("/custom")
        self.assertEqual(r.json()["timestamp"], "2024-01-02T03:04:05")
        self.assertEqual(r.headers.getRawHeaders("content-type"), ["application/json"])

    async def test_unsupported_type_is_500_naming_it(self):
        r = await self.client.get("/object")
        self.assertEqual(r.code, 500)
        self.assertEqual(r.json(), {"error": "Internal Server Error"})
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    async def test_bad_status_is_500(self):
        r = await self.client.get("/badstatus")
        self.assertEqual(r.code, 500)
        self.flushLoggedErrors(TypeError)

    async def test_nan_never_emitted(self):
        r = await self.client.get("/nan")
        self.assertEqual(r.code, 500)
        self.assertNotIn(b"NaN", r.body)
        self.flushLoggedErrors(ValueError)

    async def test_head_has_no_body(self):
        r = await self.client.head("/dict")
        self.assertEqual(r.code, 200)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("content-length"), "28")

    async def test_request_id_header(self):
        self.assertIsNone((await self.client.get("/dict")).header("x-request-id"))  # opt-in
        self.server.config.request_id_header = True
        a = await self.client.get("/dict")
        b = await self.client.get("/dict")
        self.assertTrue(a.header("x-request-id"))
        self.assertNotEqual(a.header("x-request-id"), b.header("x-request-id"))


@per_engine
class HandlerStyleTests(TestCase):
    def setUp(self):
        self.server, self.client = make()
        route = self.server.route

        @route("/sync")
        def sync(request):
            return {"style": "sync"}

        @route("/async")
        async def coro(request):
            await task.deferLater(reactor, 0, lambda: None)
            return {"style": "async"}

        @route("/deferred")
        def deferred(request):
            return task.deferLater(reactor, 0, lambda: {"style": "deferred"})

        @route("/boom")
        def boom(request):
            raise RuntimeError("secret detail")

        @route("/async-boom")
        async def async_boom(request):
            await task.deferLater(reactor, 0, lambda: None)
            raise RuntimeError("secret detail")

        @route("/deferred-boom")
        def deferred_boom(request):
            return defer.fail(RuntimeError("secret detail"))

    async def test_three_styles(self):
        for style in ("sync", "async", "deferred"):
            r = await self.client.get("/" + style)
            self.assertEqual(r.json(), {"style": style})

    async def test_exceptions_are_json_500_without_traceback(self):
        for path in ("/boom", "/async-boom", "/deferred-boom"):
            r = await self.client.get(path)
            self.assertEqual(r.code, 500, path)
            self.assertEqual(r.json(), {"error": "Internal Server Error"})
            self.assertNotIn(b"secret", r.body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)

    async def test_debug_shows_traceback(self):
        self.server.config.debug = True
        r = await self.client.get("/boom")
        self.assertIn("secret detail", r.json()["traceback"])
        self.flushLoggedErrors(RuntimeError)


@per_engine
class RequestParsingTests(TestCase):
    def setUp(self):
        self.server, self.client = make()
        route = self.server.route

        @route("/echo", method=["GET", "POST", "PUT", "PATCH", "DELETE"])
        def echo(request):
            return {
                "method": request.method,
                "path": request.path,
                "query": request.query_params,
                "json": request.json_data,
                "form": request.form_data,
                "body": request.body.decode("latin-1"),
                "auth": request.headers.get("authorization"),
                "host": request.client_address[0],
            }

        @route("/user/{user_id}/posts/{post_id}")
        def post(request):
            return {"user_id": request.path_params["user_id"],
                    "post_id": request.path_params["post_id"]}

        @route("/upload", method="POST")
        def upload(request):
            f = request.files.get("file")
            return {"form": request.form_data, "file": f and [f.filename, f.data.decode()]}

    async def test_query_params(self):
        r = await self.client.get("/echo?keyword=twisted&page=2&a=1&a=2")
        self.assertEqual(r.json()["query"], {"keyword": "twisted", "page": "2", "a": "1"})

    async def test_percent_decoded_query(self):
        r = await self.client.get("/echo?q=%E4%BD%A0%E5%A5%BD+x")
        self.assertEqual(r.json()["query"], {"q": "你好 x"})

    async def test_path_params(self):
        r = await self.client.get("/user/3/posts/4")
        self.assertEqual(r.json(), {"user_id": "3", "post_id": "4"})

    async def test_json_body(self):
        r = await self.client.post("/echo", json={"a": [1, 2]})
        self.assertEqual(r.json()["json"], {"a": [1, 2]})

    async def test_headers_case_insensitive(self):
        r = await self.client.get("/echo", headers={"AUTHORIZATION": "token"})
        self.assertEqual(r.json()["auth"], "token")

    async def test_urlencoded_form(self):
        r = await self.client.post("/echo", data={"file_name": "a.txt", "content": "x y"})
        self.assertEqual(r.json()["form"], {"file_name": "a.txt", "content": "x y"})

    async def test_form_on_put(self):
        r = await self.client.put("/echo", data={"k": "v"})
        self.assertEqual(r.json()["form"], {"k": "v"})

    async def test_multipart_form(self):
        boundary = "XyZ"
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file_name\"\r\n\r\nnotes\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nhello file\r\n--{boundary}--\r\n"
        ).encode()
        r = await self.client.post(
            "/upload", data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        self.assertEqual(r.json(), {"form": {"file_name": "notes"}, "file": ["a.txt", "hello file"]})

    async def test_invalid_json_is_400(self):
        for body in (b"{bad", b"", b"[1,", b"\xff\xfe", b"NaN", b"1e400", b'"\\ud800"'):
            r = await self.client.post("/echo", data=body,
                                       headers={"Content-Type": "application/json"})
            self.assertEqual(r.code, 400, body)
            self.assertIn("error", r.json())

    async def test_deep_nesting_is_400(self):
        r = await self.client.post("/echo", data=b"[" * 100000,
                                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.code, 400)

    async def test_huge_integer_is_400(self):
        r = await self.client.post("/echo", data=b"9" * 5000,
                                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.code, 400)

    async def test_bad_query_encoding_is_400(self):
        r = await self.client.get("/echo?q=%ff")
        self.assertEqual(r.code, 400)

    async def test_bad_form_encoding_is_400_like_the_query(self):
        for body in (b"q=%ff", b"q=\xff"):
            r = await self.client.post("/echo", data=body, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
            self.assertEqual(r.code, 400, body)
            self.assertEqual(r.json(), {"error": "form body is not valid UTF-8"})

    async def test_undecodable_path_is_400(self):
        r = await self.client.get("/echo%ff")
        self.assertEqual(r.code, 400)
        r = await self.client.get("/echo%00")
        self.assertEqual(r.code, 400)

    async def test_error_body_does_not_reflect_markup(self):
        r = await self.client.get("/<script>alert(1)</script>")
        self.assertEqual(r.code, 404)
        self.assertNotIn(b"<script>", r.body)

    async def test_client_address(self):
        r = await self.client.get("/echo")
        self.assertEqual(r.json()["host"], "127.0.0.1")


@per_engine
class DisconnectTests(TestCase):
    def test_pending_handler_cancelled_when_client_goes(self):
        from twisted.web.test.requesthelper import DummyRequest

        server = Server(router=Router(), info=False)
        pending = defer.Deferred()
        server.route("/wait")(lambda r: pending)
        request = DummyRequest([b"wait"])
        request.path = b"/wait"
        request.uri = b"/wait"
        from twisted.web.server import NOT_DONE_YET

        self.assertIs(server.resource.render(request), NOT_DONE_YET)
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure

        request.processingFailed(Failure(ConnectionLost()))
        self.assertTrue(pending.called)  # cancelled
        self.assertEqual(request.written, [])  # nothing written after the client left
