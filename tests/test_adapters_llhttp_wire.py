"""Response heads of the llhttp engine."""

from twisted.trial.unittest import SynchronousTestCase

from pyliteflux.adapters.llhttp.wire import SERVER, head_bytes, http_date, json_prefix, status_line


class WireTests(SynchronousTestCase):
    def test_status_lines(self):
        self.assertEqual(status_line(b"HTTP/1.1", 404), b"HTTP/1.1 404 Not Found\r\n")
        self.assertEqual(status_line(b"HTTP/1.0", 799), b"HTTP/1.0 799 Unknown Status\r\n")

    def test_defaults_and_overrides(self):
        head = head_bytes(b"HTTP/1.1", 200, [(b"Content-Length", b"2")])
        self.assertIn(b"Server: " + SERVER + b"\r\n", head)
        self.assertIn(b"Date: " + http_date() + b"\r\n", head)
        self.assertIn(b"Content-Type: text/html\r\n", head)  # Twisted's default
        head = head_bytes(b"HTTP/1.1", 200, [(b"Server", b"mine"), (b"Content-Length", b"0")])
        self.assertNotIn(SERVER, head)
        self.assertNotIn(b"Content-Type", head)  # an empty body needs none
        self.assertNotIn(b"Content-Type", head_bytes(b"HTTP/1.1", 204, []))
        self.assertTrue(head.endswith(b"\r\n\r\n"))

    def test_no_header_injection(self):
        head = head_bytes(b"HTTP/1.1", 200, [(b"X-A", b"a\r\nSet-Cookie: x=1")])
        self.assertIn(b"X-A: a Set-Cookie: x=1\r\n", head)

    def test_json_prefix(self):
        self.assertTrue(json_prefix().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(json_prefix().endswith(b"Content-Length: "))
