"""The llhttp engine's writing: request ids, jobs after the response, late values."""

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.llhttp_helpers import connect, llhttp_app


class RespondTests(SynchronousTestCase):
    def test_request_id_and_jobs_after_the_response(self):
        server = llhttp_app(request_id_header=True)
        ran = []

        @server.route("/job")
        def job(request):
            request.bg.add(lambda: ran.append(1))
            return {"ok": 1}

        server.jobs.interceptor = lambda f, *a, **k: defer.succeed(f(*a, **k))
        _, proto, transport, _ = connect(server)
        proto.dataReceived(b"GET /job HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"X-Request-ID: ", transport.value())
        self.assertEqual(ran, [1])

    def test_late_value_after_disconnect_is_cancelled(self):
        server = llhttp_app()
        later = defer.Deferred()
        server.route("/later")(lambda request: later)
        _, proto, transport, _ = connect(server)
        proto.dataReceived(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
        proto.connectionLost(Failure(ConnectionError()))
        self.assertTrue(later.called)  # cancelled
        self.assertEqual(transport.value(), b"")

    def test_pipelined_late_responses_stay_in_order(self):
        server = llhttp_app()
        later = defer.Deferred()
        server.route("/later")(lambda request: later)
        _, proto, transport, _ = connect(server)
        proto.dataReceived(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(transport.value(), b"")
        later.callback("first")
        out = transport.value()
        self.assertLess(out.index(b"first"), out.index(b'{"hello": "world"}'))
