"""Config: SPEC §2 keys, defaults and validation (all-or-nothing)."""

from twisted.trial.unittest import SynchronousTestCase

from pyliteflux import Server
from pyliteflux.config import CONFIG_KEYS, Config


class DefaultsTests(SynchronousTestCase):
    def test_spec_defaults(self):
        c = Config()
        self.assertEqual(c.http_host, "127.0.0.1")
        self.assertEqual(c.http_port, 8000)
        self.assertEqual(c.tcp_host, "127.0.0.1")
        self.assertEqual(c.tcp_port, 8001)
        self.assertIs(c.tcp_keep_alive, False)
        self.assertIs(c.info, True)

    def test_every_key_documented(self):
        for key in CONFIG_KEYS:
            self.assertTrue(key.doc)
            self.assertIsNone(key.check(key.default), key.name)


class ValidationTests(SynchronousTestCase):
    def test_attribute_style(self):
        server = Server()
        server.config.tcp_keep_alive = True
        self.assertIs(server.config.tcp_keep_alive, True)

    def test_update(self):
        c = Config()
        c.update(http_host="127.0.0.1", http_port=8000, tcp_host="127.0.0.1", tcp_port=8001,
                 tcp_keep_alive=True, info=True)
        self.assertIs(c.tcp_keep_alive, True)

    def _assert_rejected(self, **kw):
        c = Config()
        before = c.as_dict()
        exc = self.assertRaises(ValueError, c.update, **kw)
        for name in kw:
            if name != "http_port":
                self.assertIn(name, str(exc))
        self.assertEqual(c.as_dict(), before)

    def test_unknown_key(self):
        self._assert_rejected(nonsense=1)

    def test_bad_host(self):
        self._assert_rejected(http_host="not a host!")
        self._assert_rejected(tcp_host=12)

    def test_port_out_of_range(self):
        self._assert_rejected(http_port=70000)
        self._assert_rejected(tcp_port=-1)

    def test_wrong_types(self):
        self._assert_rejected(http_port="8000")
        self._assert_rejected(http_port=True)
        self._assert_rejected(tcp_keep_alive="yes")
        self._assert_rejected(info=1)

    def test_update_is_all_or_nothing(self):
        c = Config()
        self.assertRaises(ValueError, c.update, http_port=9000, tcp_port="x")
        self.assertEqual(c.http_port, 8000)

    def test_attribute_assignment_validated(self):
        c = Config()
        self.assertRaises(ValueError, setattr, c, "http_port", 99999)
        self.assertRaises(ValueError, setattr, c, "bogus", 1)
        self.assertEqual(c.http_port, 8000)

    def test_hostnames_and_ipv6_accepted(self):
        c = Config()
        c.update(http_host="localhost", tcp_host="::1")
        self.assertEqual(c.tcp_host, "::1")

    def test_port_zero_allowed(self):
        Config(http_port=0, tcp_port=0)

    def test_server_kwargs_validated(self):
        self.assertRaises(ValueError, Server, http_port="x")
