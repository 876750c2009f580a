"""Middleware (SPEC §6): order, short-circuit, raw values, async, errors, and the seed's classes."""

import time
import uuid

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import Middleware, Router, Server, g
from pyliteflux.core.middleware import MiddlewareManager
from pyliteflux.testing import TestClient, load_app
from tests.engines import per_engine


def make(**config):
    server = Server(router=Router(), info=False, **config)
    return server, TestClient(server)


class Recorder(Middleware):
    def __init__(self, name, log, short=None):
        self.name, self.log, self.short = name, log, short

    def process_request(self, request):
        self.log.append(("req", self.name))
        return self.short

    def process_response(self, request, response):
        self.log.append(("resp", self.name))
        return response


@per_engine
class OrderTests(TestCase):
    def setUp(self):
        self.server, self.client = make()
        self.log = []
        self.server.route("/x")(lambda r: self.log.append(("handler",)) or {"ok": True})

    async def test_request_in_order_response_in_reverse(self):
        for name in "abc":
            self.server.middleware_manager.add_middleware(Recorder(name, self.log))
        await self.client.get("/x")
        self.assertEqual(self.log, [("req", "a"), ("req", "b"), ("req", "c"), ("handler",),
                                    ("resp", "c"), ("resp", "b"), ("resp", "a")])

    async def test_short_circuit_skips_handler_and_inner_middleware(self):
        self.server.add_middleware(Recorder("a", self.log))
        self.server.add_middleware(Recorder("b", self.log, short={"error": "stop"}))
        self.server.add_middleware(Recorder("c", self.log))
        r = await self.client.get("/x")
        self.assertEqual(r.json(), {"error": "stop"})
        self.assertEqual(self.log, [("req", "a"), ("req", "b"), ("resp", "b"), ("resp", "a")])

    async def test_process_response_runs_for_404_and_405(self):
        self.server.add_middleware(Recorder("a", self.log))
        r = await self.client.get("/nope")
        self.assertEqual(r.code, 404)
        r = await self.client.post("/x")
        self.assertEqual(r.code, 405)
        self.assertEqual(self.log, [("req", "a"), ("resp", "a")] * 2)

    async def test_protocol_filter(self):
        self.server.add_middleware(Recorder("tcp-only", self.log), protocol="tcp")
        await self.client.get("/x")
        self.assertEqual(self.log, [("handler",)])


@per_engine
class RawValueTests(TestCase):
    async def test_process_response_sees_raw_value(self):
        server, client = make()
        seen = []

        class Spy(Middleware):
            def process_response(self, request, response):
                seen.append(response)
                return response

        server.add_middleware(Spy())
        server.route("/tuple")(lambda r: ({"a": 1}, 201))
        r = await client.get("/tuple")
        self.assertEqual(seen, [({"a": 1}, 201)])
        self.assertEqual(r.code, 201)

    async def test_can_replace_response(self):
        server, client = make()

        class Replace(Middleware):
            def process_response(self, request, response):
                return "replaced", 202

        server.add_middleware(Replace())
        server.route("/x")(lambda r: {"a": 1})
        r = await client.get("/x")
        self.assertEqual((r.code, r.text()), (202, "replaced"))


@per_engine
class AsyncMiddlewareTests(TestCase):
    async def test_async_and_deferred_methods(self):
        server, client = make()

        class AsyncMW(Middleware):
            async def process_request(self, request):
                await task.deferLater(reactor, 0, lambda: None)
                g.async_seen = True

            async def process_response(self, request, response):
                await task.deferLater(reactor, 0, lambda: None)
                response["async"] = g.async_seen
                return response

        class DeferredMW(Middleware):
            def process_request(self, request):
                return task.deferLater(reactor, 0, lambda: None)

            def process_response(self, request, response):
                return task.deferLater(reactor, 0, lambda: {**response, "deferred": True})

        server.add_middleware(AsyncMW())
        server.add_middleware(DeferredMW())
        server.route("/x")(lambda r: {"handler": True})
        r = await client.get("/x")
        self.assertEqual(r.json(), {"handler": True, "deferred": True, "async": True})

    async def test_async_short_circuit(self):
        server, client = make()

        class Deny(Middleware):
            def process_request(self, request):
                return defer.succeed(({"error": "denied"}, 403))

        server.add_middleware(Deny())
        server.route("/x")(lambda r: {"handler": True})
        r = await client.get("/x")
        self.assertEqual((r.code, r.json()), (403, {"error": "denied"}))


@per_engine
class FailingMiddlewareTests(TestCase):
    async def test_raising_process_request_is_500_and_outer_response_runs(self):
        server, client = make()
        log = []

        class Boom(Middleware):
            def process_request(self, request):
                raise RuntimeError("mw broke")

        server.add_middleware(Recorder("outer", log))
        server.add_middleware(Boom())
        server.route("/x")(lambda r: {"a": 1})
        r = await client.get("/x")
        self.assertEqual((r.code, r.json()), (500, {"error": "Internal Server Error"}))
        self.assertEqual(log, [("req", "outer"), ("resp", "outer")])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_raising_process_response_is_500_and_outer_still_runs(self):
        server, client = make()
        log = []

        class Boom(Middleware):
            def process_response(self, request, response):
                raise RuntimeError("mw broke")

        server.add_middleware(Recorder("outer", log))
        server.add_middleware(Boom())
        server.route("/x")(lambda r: {"a": 1})
        r = await client.get("/x")
        self.assertEqual(r.code, 500)
        self.assertEqual(log, [("req", "outer"), ("resp", "outer")])
        self.flushLoggedErrors(RuntimeError)


class ManagerTests(SynchronousTestCase):
    def test_methods_resolved_once_and_noops_skipped(self):
        class OnlyRequest(Middleware):
            def process_request(self, request):
                return None

        m = MiddlewareManager()
        mw = m.add_middleware(OnlyRequest())
        ((req, resp),) = m.chain("http")
        self.assertEqual(req, mw.process_request)
        self.assertIsNone(resp)
        self.assertEqual(m.chain("tcp"), m.chain("http"))

    def test_rejects_class_and_bad_protocol(self):
        m = MiddlewareManager()
        self.assertRaises(TypeError, m.add_middleware, Middleware)
        self.assertRaises(ValueError, m.add_middleware, Middleware(), protocol="udp")

    def test_duck_typed_middleware(self):
        class Duck:
            def process_request(self, request):
                return None

        MiddlewareManager().add_middleware(Duck())
        self.assertRaises(TypeError, MiddlewareManager().add_middleware, object())


# -- the seed's middlewares, as written in its README ------------------------------


# The seed's Auth, Log, permission Auth, Performance and Tracing middlewares live,
# unchanged, in examples/middleware.py and examples/api.py; load_app imports
# those modules without running their servers, and the tests use the classes.
load_app("examples.middleware:server")
load_app("examples.api:server")

from examples.api import AuthMiddleware as PermissionAuthMiddleware  # noqa: E402
from examples.api import PerformanceMiddleware, TracingMiddleware  # noqa: E402
from examples.middleware import AuthMiddleware, LogMiddleware  # noqa: E402


class CustomMiddleware(Middleware):
    def __init__(self, **options):
        self.options = options

    def process_request(self, request):
        request.custom_attr = self.options.get("custom_attr")
        return None

    def process_response(self, request, response):
        if isinstance(response, dict):
            response["processed_by"] = self.options.get("name", "CustomMiddleware")
        return response


@per_engine
class SeedMiddlewareTests(TestCase):
    def setUp(self):
        self.server, self.client = make()

        @self.server.route("/user", method="GET")
        def get_user(request):
            if hasattr(g, "user"):
                return {"message": "User info", "user": g.user, "request_id": g.request_id}
            return {"error": "User not found"}

    async def test_auth_and_log(self):
        self.server.middleware_manager.add_middleware(AuthMiddleware())
        self.server.middleware_manager.add_middleware(LogMiddleware())
        r = await self.client.get("/user")
        self.assertEqual(r.json(), {"error": "Unauthorized", "authenticated": False})
        r = await self.client.get("/user", headers={"Authorization": "token"})
        body = r.json()
        self.assertEqual(body["user"], {"id": 1, "name": "user1"})
        self.assertTrue(body["authenticated"])
        self.assertTrue(body["request_id"])

    async def test_admin_permissions(self):
        self.server.add_middleware(PermissionAuthMiddleware())

        @self.server.route("/admin", method="GET")
        def admin_panel(request):
            if not hasattr(g, "permissions") or "admin" not in g.permissions:
                return {"error": "Access denied"}, 403
            return {"message": "Welcome, admin!"}

        r = await self.client.get("/admin")
        self.assertEqual((r.code, r.json()), (403, {"error": "Access denied"}))
        r = await self.client.get("/admin", headers={"Authorization": "root"})
        self.assertEqual((r.code, r.json()), (200, {"message": "Welcome, admin!"}))

    async def test_performance_and_tracing(self):
        self.server.add_middleware(PerformanceMiddleware())
        self.server.add_middleware(TracingMiddleware())

        def process_data():
            return [1, 2]

        @self.server.route("/trace", method="GET")
        def traced_endpoint(request):
            g.traces.append({"event": "processing", "time": time.time()})
            result = process_data()
            g.traces.append({"event": "completed", "time": time.time()})
            return {"data": result}

        r = await self.client.get("/trace")
        body = r.json()
        self.assertEqual(body["data"], [1, 2])
        self.assertEqual([t["event"] for t in body["traces"]], ["processing", "completed"])
        uuid.UUID(body["trace_id"])

    async def test_custom_middleware_options(self):
        self.server.middleware_manager.add_middleware(
            CustomMiddleware(name="MyMiddleware", custom_attr="custom_value"))

        @self.server.route("/attr")
        def attr(request):
            return {"attr": request.custom_attr}

        r = await self.client.get("/attr")
        self.assertEqual(r.json(), {"attr": "custom_value", "processed_by": "MyMiddleware"})
