"""The router: compile at registration, static/dynamic/wildcard, 404 vs 405."""

from twisted.trial.unittest import SynchronousTestCase

from pyliteflux import Route, Server
from pyliteflux.core.errors import MethodNotAllowed, NotFound
from pyliteflux.core.routing import Router


def h(name):
    def handler(request):
        return name

    handler.__name__ = name
    return handler


class StaticAndDynamicTests(SynchronousTestCase):
    def setUp(self):
        self.r = Router()
        self.r.register("/hello")(h("hello"))
        self.r.register("/user", method="POST")(h("create_user"))
        self.r.register("/user/me")(h("me"))
        self.r.register("/user/{id}")(h("user"))
        self.r.register("/item/{id:int}")(h("item"))
        self.r.register("/files/*")(h("files"))
        self.r.register("/user/{user_id}/posts/{post_id}")(h("post"))

    def test_static_route(self):
        m = self.r.match_http("GET", "/hello")
        self.assertEqual(m.handler(None), "hello")
        self.assertEqual(m.path_params, {})

    def test_static_wins_over_parameterised(self):
        self.assertEqual(self.r.match_http("GET", "/user/me").handler(None), "me")
        self.assertEqual(self.r.match_http("GET", "/user/42").handler(None), "user")

    def test_path_params_are_strings(self):
        self.assertEqual(self.r.match_http("GET", "/user/42").path_params, {"id": "42"})

    def test_two_params(self):
        m = self.r.match_http("GET", "/user/7/posts/9")
        self.assertEqual(m.path_params, {"user_id": "7", "post_id": "9"})

    def test_typed_param_converts(self):
        self.assertEqual(self.r.match_http("GET", "/item/12").path_params, {"id": 12})

    def test_typed_param_mismatch_is_404(self):
        self.assertRaises(NotFound, self.r.match_http, "GET", "/item/abc")

    def test_wildcard_takes_rest_of_path(self):
        m = self.r.match_http("GET", "/files/a/b/c.txt")
        self.assertEqual(m.handler(None), "files")
        self.assertEqual(m.path_params, {"*": "a/b/c.txt"})

    def test_unknown_path_is_404(self):
        self.assertRaises(NotFound, self.r.match_http, "GET", "/nope")

    def test_other_method_is_405_with_allow(self):
        exc = self.assertRaises(MethodNotAllowed, self.r.match_http, "DELETE", "/hello")
        self.assertEqual(exc.headers["Allow"], "GET, HEAD, OPTIONS")
        exc = self.assertRaises(MethodNotAllowed, self.r.match_http, "GET", "/user")
        self.assertEqual(exc.headers["Allow"], "OPTIONS, POST")

    def test_head_answers_from_get(self):
        self.assertEqual(self.r.match_http("HEAD", "/hello").handler(None), "hello")
        self.assertEqual(self.r.match_http("HEAD", "/user/3").handler(None), "user")

    def test_options_answered_automatically(self):
        resp = self.r.match_http("OPTIONS", "/hello").handler(None)
        self.assertEqual(resp.status, 204)
        self.assertEqual(resp.headers["Allow"], "GET, HEAD, OPTIONS")

    def test_dynamic_405(self):
        exc = self.assertRaises(MethodNotAllowed, self.r.match_http, "POST", "/user/3")
        self.assertIn("GET", exc.allowed)


class RegistrationTests(SynchronousTestCase):
    def test_all_methods(self):
        r = Router()
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
            r.register("/x", method=m)(h(m))
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
            self.assertEqual(r.match_http(m, "/x").handler(None), m)

    def test_method_list(self):
        r = Router()
        r.register("/x", method=["GET", "post"])(h("x"))
        self.assertEqual(r.match_http("POST", "/x").handler(None), "x")

    def test_bad_method_rejected(self):
        self.assertRaises(ValueError, Router().register, "/x", method="FETCH")

    def test_bad_protocol_rejected(self):
        self.assertRaises(ValueError, Router().register, "/x", protocol="udp")

    def test_bad_converter_rejected(self):
        self.assertRaises(ValueError, Router().register("/x/{id:bogus}"), h("x"))

    def test_tcp_commands(self):
        r = Router()
        r.register("clients", protocol="tcp")(h("clients"))
        self.assertEqual(r.match_command("clients").handler(None), "clients")
        self.assertRaises(NotFound, r.match_command, "nope")
        self.assertRaises(NotFound, r.match_http, "GET", "/clients")

    def test_both_protocols(self):
        r = Router()
        r.register("/ping", protocol="both")(h("ping"))
        self.assertEqual(r.match_http("GET", "/ping").handler(None), "ping")
        self.assertEqual(r.match_command("ping").handler(None), "ping")

    def test_reregistering_replaces(self):
        r = Router()
        r.register("/x")(h("old"))
        r.register("/x")(h("new"))
        self.assertEqual(r.match_http("GET", "/x").handler(None), "new")
        r.register("/y/{a}")(h("old"))
        r.register("/y/{a}")(h("new"))
        self.assertEqual(r.match_http("GET", "/y/1").handler(None), "new")

    def test_decorator_returns_the_function(self):
        f = h("f")
        self.assertIs(Router().register("/f")(f), f)


class DefaultRegistryTests(SynchronousTestCase):
    def test_route_register_uses_default_and_server_binds_it(self):
        with Route.isolated() as router:
            server = Server()

            @Route.register("/iso")
            def iso(request):
                return "iso"

        self.assertIs(server.router, router)
        self.assertEqual(server.router.match_http("GET", "/iso").handler(None), "iso")
        self.assertRaises(NotFound, Route.default.match_http, "GET", "/iso")

    def test_two_servers_with_own_routers_do_not_share(self):
        a, b = Server(router=Router()), Server(router=Router())
        a.route("/only-a")(h("a"))
        self.assertRaises(NotFound, b.router.match_http, "GET", "/only-a")


class IndexTests(SynchronousTestCase):
    def test_many_dynamic_routes_keep_registration_order_across_heads(self):
        r = Router()
        r.register("/{any}/x")(h("any-first"))
        for i in range(100):
            r.register(f"/r{i}/{{id}}")(h(f"r{i}"))
        r.register("/{other}/{id}")(h("catch-all"))
        self.assertEqual(r.match_http("GET", "/r99/5").handler(None), "r99")
        self.assertEqual(r.match_http("GET", "/r7/x").handler(None), "any-first")
        self.assertEqual(r.match_http("GET", "/zzz/1").handler(None), "catch-all")
        self.assertEqual(r.match_http("GET", "/r3/1").path_params, {"id": "1"})
        self.assertRaises(NotFound, r.match_http, "GET", "/r3/1/2")

    def test_wildcard_at_root(self):
        r = Router()
        r.register("/*")(h("all"))
        self.assertEqual(r.match_http("GET", "/a/b").path_params, {"*": "a/b"})


class RoutePatternTests(SynchronousTestCase):
    """``http_route``: the matched pattern, a bounded label for metrics."""

    def test_patterns_of_static_dynamic_405_and_options(self):
        from pyliteflux.core.routing import UNMATCHED

        r = Router()
        r.register("/hello")(lambda req: "hi")
        r.register("/user/{id:int}", method="PUT")(lambda req: "put")
        self.assertEqual(r.http_route("GET", "/hello")[2], "/hello")
        self.assertEqual(r.http_route("HEAD", "/hello")[2], "/hello")
        self.assertEqual(r.http_route("PUT", "/user/7")[1:], ({"id": 7}, "/user/{id:int}"))
        self.assertEqual(r.http_route("OPTIONS", "/user/7")[2], "/user/{id:int}")
        with self.assertRaises(MethodNotAllowed) as caught:
            r.http_route("GET", "/user/7")
        self.assertEqual(caught.exception.route, "/user/{id:int}")
        with self.assertRaises(MethodNotAllowed) as caught:
            r.http_route("POST", "/hello")
        self.assertEqual(caught.exception.route, "/hello")
        with self.assertRaises(NotFound):
            r.http_route("GET", "/nope")
        self.assertEqual(UNMATCHED, "<unmatched>")
        self.assertTrue(r.has_command("x") is False)
