"""Loading an app by name (service/loading.py), shared by twistd and the tests."""

from twisted.trial.unittest import SynchronousTestCase

from pyliteflux import Server
from pyliteflux.service.loading import (
    AppLoadError,
    NotAServer,
    importing_app,
    load_app,
    run_suppressed,
)


class LoadingTests(SynchronousTestCase):
    def test_load_a_server(self):
        server = load_app("examples.hello:server", Server, fresh=True)
        self.assertIsInstance(server, Server)

    def test_default_attribute(self):
        self.assertIsInstance(load_app("examples.hello", Server, default_attr="server",
                                       fresh=True), Server)

    def test_needs_an_attribute_without_a_default(self):
        with self.assertRaises(AppLoadError) as caught:
            load_app("examples.hello", Server)
        self.assertIn("module:attribute", str(caught.exception))

    def test_missing_module(self):
        with self.assertRaises(AppLoadError) as caught:
            load_app("no_such_module_here:server", Server)
        self.assertIn("no module named 'no_such_module_here'", str(caught.exception))

    def test_missing_attribute(self):
        with self.assertRaises(AppLoadError) as caught:
            load_app("examples.hello:nope", Server)
        self.assertIn("has no attribute 'nope'", str(caught.exception))

    def test_not_a_server_is_also_a_type_error(self):
        with self.assertRaises(NotAServer) as caught:
            load_app("os:sep", Server)
        self.assertIsInstance(caught.exception, TypeError)

    def test_importing_app_suppresses_run(self):
        self.assertFalse(run_suppressed())
        with importing_app():
            with importing_app():
                self.assertTrue(run_suppressed())
            self.assertTrue(run_suppressed())
        self.assertFalse(run_suppressed())
