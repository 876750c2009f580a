"""The shared pipeline: synchronous fast path, hand-off to Deferreds, error values."""

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from pyliteflux import HTTPJSONResponse, Middleware, Router, Server, g
from pyliteflux.core.requests import TCPRequest


def tcp_request(command, data=None):
    return TCPRequest(command, data, "json", ("127.0.0.1", 1))


class FastPathTests(SynchronousTestCase):
    def setUp(self):
        self.server = Server(router=Router(), info=False)
        self.server.route("plain", protocol="tcp")(lambda r: {"plain": True})
        self.gate = defer.Deferred()
        self.server.route("waits", protocol="tcp")(lambda r: self.gate)

    def test_sync_handler_and_middleware_return_a_plain_value(self):
        class Tag(Middleware):
            def process_request(self, request):
                g.tag = 1

            def process_response(self, request, response):
                return {**response, "tag": g.tag}

        self.server.add_middleware(Tag())
        value = self.server.pipeline.dispatch(tcp_request("plain"))
        self.assertNotIsInstance(value, defer.Deferred)
        self.assertEqual(value, {"plain": True, "tag": 1})

    def test_awaitable_handler_hands_off_to_a_deferred(self):
        value = self.server.pipeline.dispatch(tcp_request("waits"))
        self.assertIsInstance(value, defer.Deferred)
        self.assertNoResult(value)
        self.gate.callback({"late": True})
        self.assertEqual(self.successResultOf(value), {"late": True})

    def test_already_fired_deferred_stays_synchronous(self):
        self.server.route("fired", protocol="tcp")(lambda r: defer.succeed(5))
        self.assertEqual(self.server.pipeline.dispatch(tcp_request("fired")), 5)

    def test_cancelling_cancels_the_handlers_deferred(self):
        value = self.server.pipeline.dispatch(tcp_request("waits"))
        value.cancel()
        self.assertTrue(self.gate.called)
        self.assertEqual(self.successResultOf(value), {"error": "Internal Server Error"})

    def test_not_found_and_errors_are_values(self):
        self.assertEqual(self.server.pipeline.dispatch(tcp_request("nope")),
                         {"error": "Command not found", "command": "nope"})
        self.server.route("boom", protocol="tcp")(lambda r: 1 / 0)
        self.assertEqual(self.server.pipeline.dispatch(tcp_request("boom")),
                         {"error": "Internal Server Error"})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_http_errors_become_json_responses(self):
        from twisted.web.test.requesthelper import DummyRequest

        from pyliteflux.core.errors import HTTPError
        from pyliteflux.core.pipeline import error_value
        from pyliteflux.core.requests import HTTPRequest

        value = error_value(HTTPRequest(DummyRequest([b""])), HTTPError("nope", 418))
        self.assertIsInstance(value, HTTPJSONResponse)
        self.assertEqual((value.status, value.data), (418, {"error": "nope"}))
