"""The testing helpers themselves (what users' suites rely on)."""

import pytest_twisted
import treq
from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import Route, Router, Server
from pyliteflux.testing import TestClient, load_app, serve
from tests.engines import per_engine


def app():
    server = Server(router=Router(), info=False, tcp_keep_alive=True)
    server.route("/hello")(lambda r: {"message": "Hello, World!"})

    @server.route("/later")
    def later(request):
        return task.deferLater(reactor, 0.01, lambda: "later")

    @server.route("/job")
    def job(request):
        request.bg.add(server.push_message, "from job")
        return "queued"

    server.route("who", protocol="tcp")(lambda r: r.client_id)
    return server


@per_engine
class TestClientTests(TestCase):
    async def test_response_api(self):
        r = await TestClient(app()).get("/hello")
        self.assertEqual((r.code, r.json(), r.text()), (200, {"message": "Hello, World!"},
                                                        '{"message": "Hello, World!"}'))
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertIsNone(r.header("X-Missing"))

    async def test_bad_multipart_form_is_the_same_json_400_as_in_production(self):
        server = app()
        server.route("/form", method="POST")(lambda r: r.form_data)
        r = await TestClient(server).post("/form", data=b"abc", headers={
            "Content-Type": "multipart/form-data; boundary=XX"})
        self.assertEqual((r.code, r.json()), (400, {"error": "malformed multipart body"}))

    async def test_response_that_finishes_later(self):
        r = await TestClient(app()).get("/later")
        self.assertEqual(r.text(), "later")

    async def test_sync_jobs_run_right_after_the_response(self):
        server = app()
        client = TestClient(server)
        conn = client.connect()
        await conn.send("who")
        await client.get("/job")
        self.assertEqual(conn.pushes, [{"type": "push", "data": "from job"}])
        self.assertEqual(server.jobs.stats.done, 1)

    async def test_captured_jobs_wait_for_the_test(self):
        server = app()
        client = TestClient(server, jobs="capture")
        conn = client.connect()
        await client.get("/job")
        self.assertEqual(conn.pushes, [])
        self.assertEqual(len(client.jobs.captured), 1)
        await client.jobs.run_all()
        self.assertEqual(len(conn.pushes), 1)

    async def test_tcp_connections_have_distinct_ids_and_registry(self):
        server = app()
        client = TestClient(server)
        a, b = client.connect(), client.connect()
        self.assertNotEqual(a.client_id, b.client_id)
        self.assertEqual(await a.send("who"), a.client_id)
        self.assertEqual(set(server.connections), {a.client_id, b.client_id})
        b.close()
        with self.assertRaises(ConnectionDone):
            await b.send("who")


@per_engine
class ServeTests(TestCase):
    async def test_serve_on_free_ports_and_stop_cleanly(self):
        running = await serve(app())
        response = await treq.get(running.url("/hello"), persistent=False)
        self.assertEqual(await response.json(), {"message": "Hello, World!"})
        await running.stop()
        # trial fails this test if anything (ports, timers) is left behind


class LoadAppTests(SynchronousTestCase):
    def test_two_apps_with_the_same_route_stay_apart(self):
        hello = load_app("examples.hello:server")
        middleware = load_app("examples.middleware:server")
        self.assertIsNot(hello.router, middleware.router)
        self.assertIsNot(hello.router, Route.default)
        self.assertEqual(len(hello.router), 1)
        self.assertEqual(len(middleware.middleware_manager), 2)

    def test_factory_attribute(self):
        import sys
        import types

        module = types.ModuleType("fake_app_module")
        module.make = lambda: Server(router=Router())
        sys.modules["fake_app_module"] = module
        self.addCleanup(sys.modules.pop, "fake_app_module", None)
        self.assertIsInstance(load_app("fake_app_module:make", fresh=False), Server)

    def test_not_a_server(self):
        self.assertRaises(TypeError, load_app, "os:sep", fresh=False)


@pytest_twisted.ensureDeferred
async def test_pytest_twisted_style():
    """The same helpers from a plain pytest function under pytest-twisted."""
    client = TestClient(app())
    r = await client.get("/later")
    assert r.text() == "later"
    conn = client.connect()
    assert await conn.send("who") == conn.client_id
    await defer.succeed(None)


class ClientLikeTests(TestCase):
    """TestClient behaves as an HTTP client would (encoding, cut-off bodies)."""

    async def test_non_ascii_paths_and_headers_are_encoded(self):
        server = Server(router=Router(), info=False)
        server.route("/hé")(lambda r: {"path": r.path, "h": r.headers.get("X-Name")})
        r = await TestClient(server).get("/hé", headers={"X-Name": "日本"})
        self.assertEqual(r.code, 200)
        self.assertEqual(r.json()["path"], "/hé")

    async def test_a_stream_cut_off_midway_is_a_failed_response(self):
        from twisted.web.client import ResponseFailed

        from pyliteflux import StreamResponse

        server = Server(router=Router(), info=False)

        def broken():
            yield "part1"
            raise RuntimeError("the stream broke")

        server.route("/s")(lambda r: StreamResponse(broken()))
        with self.assertRaises(ResponseFailed):
            await TestClient(server).get("/s")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
