"""RawRequest: what HTTPRequest reads, and the writer streams drive."""

from twisted.internet.address import IPv4Address
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from pyliteflux.adapters.llhttp.raw import RawRequest
from pyliteflux.core.requests import HTTPRequest


class Channel:
    peer = IPv4Address("TCP", "10.0.0.1", 1234)

    def __init__(self):
        self.out = []
        self.done = []

    def write(self, data):
        self.out.append(data)

    def response_done(self, raw):
        self.done.append(raw)


def raw(method=b"GET", uri=b"/a?x=1", headers=(), body=None, version=b"HTTP/1.1"):
    return RawRequest(Channel(), method, uri, version, list(headers), body, True)


class RawRequestTests(SynchronousTestCase):
    def test_what_http_request_reads(self):
        r = raw(headers=[(b"Cookie", b"a=1; b=2"), (b"X-Y", b"1"), (b"x-y", b"2")], body=b"hi")
        req = HTTPRequest(r)
        self.assertEqual((req.method, req.path, req.query_params), ("GET", "/a", {"x": "1"}))
        self.assertEqual(req.headers.getlist("x-y"), ["1", "2"])
        self.assertEqual(req.cookies, {"a": "1", "b": "2"})
        self.assertEqual(req.body, b"hi")
        self.assertEqual(req.client_address, ("10.0.0.1", 1234))
        self.assertEqual(r.getHeader(b"X-y"), b"2")

    def test_streamed_writes_are_chunked_on_1_1(self):
        r = raw()
        r.responseHeaders.setRawHeaders(b"Content-Type", [b"text/plain"])
        r.write(b"ab")
        r.write(b"c")
        r.finish()
        out = b"".join(r.channel.out)
        self.assertIn(b"Transfer-Encoding: chunked\r\n", out)
        self.assertTrue(out.endswith(b"\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"))
        self.assertEqual(r.channel.done, [r])

    def test_http_1_0_body_runs_to_the_close(self):
        r = raw(version=b"HTTP/1.0")
        r.write(b"ab")
        r.finish()
        out = b"".join(r.channel.out)
        self.assertTrue(out.startswith(b"HTTP/1.0 200 OK\r\n"))
        self.assertNotIn(b"chunked", out)
        self.assertTrue(out.endswith(b"\r\n\r\nab"))

    def test_notify_finish(self):
        r = raw()
        done, lost = [], []
        r.notifyFinish().addCallback(done.append)
        r.finish()
        self.assertEqual(done, [None])
        r2 = raw()
        r2.notifyFinish().addErrback(lost.append)
        r2.connection_lost(Failure(ConnectionError()))
        self.assertEqual(len(lost), 1)
        r2.notifyFinish().addErrback(lost.append)
        self.assertEqual(len(lost), 2)
