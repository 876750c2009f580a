"""The request context g (SPEC §7): per request, across Deferreds and coroutines."""

import contextvars

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import Middleware, Router, Server, g
from pyliteflux.core.context import new_context
from pyliteflux.testing import TestClient


class PlainObjectTests(SynchronousTestCase):
    def test_set_get_has_del(self):
        ctx = new_context()

        def body():
            self.assertFalse(hasattr(g, "x"))
            g.x = 1
            self.assertTrue(hasattr(g, "x"))
            self.assertEqual(g.x, 1)
            self.assertIn("x", g)
            self.assertEqual(g.get("x"), 1)
            self.assertEqual(g.get("y", 5), 5)
            del g.x
            self.assertFalse(hasattr(g, "x"))
            self.assertRaises(AttributeError, getattr, g, "x")
            self.assertRaises(AttributeError, delattr, g, "x")

        ctx.run(body)

    def test_outside_a_request_is_empty_not_a_crash(self):
        ctx = contextvars.Context()

        def body():
            self.assertFalse(hasattr(g, "anything"))
            self.assertEqual(list(g), [])
            g.set_outside = 1  # lands in this context only
            self.assertEqual(g.set_outside, 1)

        ctx.run(body)
        self.assertFalse(contextvars.Context().run(hasattr, g, "set_outside"))


class IsolationTests(TestCase):
    async def test_interleaved_requests_each_see_their_own_g(self):
        server = Server(router=Router(), info=False)
        client = TestClient(server)

        class Tag(Middleware):
            def process_request(self, request):
                g.tag = request.query_params["n"]

            def process_response(self, request, response):
                # runs after the handler's Deferred fired from the reactor:
                # must still see this request's g
                response["mw_tag"] = g.tag
                response["mw_rid"] = g.request_id
                return response

        server.add_middleware(Tag())

        @server.route("/coro")
        async def coro(request):
            n = int(request.query_params["n"])
            g.mine = n
            await task.deferLater(reactor, (n % 5) * 0.002, lambda: None)
            return {"tag": g.tag, "mine": g.mine, "rid": g.request_id}

        @server.route("/deferred")
        def deferred(request):
            n = int(request.query_params["n"])
            g.mine = n
            return task.deferLater(reactor, ((7 - n) % 5) * 0.002, lambda: {"n": n})

        ds = []
        for n in range(40):
            ds.append(client.get(f"/coro?n={n}"))
            ds.append(client.get(f"/deferred?n={n}"))
        responses = await defer.gatherResults(ds)
        rids = set()
        for i, r in enumerate(responses):
            body = r.json()
            n = str(i // 2)
            self.assertEqual(body["mw_tag"], n)
            if i % 2 == 0:
                self.assertEqual((body["tag"], body["mine"]), (n, int(n)))
                self.assertEqual(body["rid"], body["mw_rid"])
            rids.add(body["mw_rid"])
        self.assertEqual(len(rids), 80)  # request_id unique per request

    async def test_g_does_not_leak_between_requests(self):
        server = Server(router=Router(), info=False)
        client = TestClient(server)

        @server.route("/set")
        def setter(request):
            had = hasattr(g, "leak")
            g.leak = True
            return {"had": had}

        for _ in range(3):
            r = await client.get("/set")
            self.assertEqual(r.json(), {"had": False})
        self.assertFalse(hasattr(g, "leak"))
