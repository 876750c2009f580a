"""The public names (SPEC §1) are importable from the top level, and only those are exported."""

from twisted.trial.unittest import SynchronousTestCase

import pyliteflux


class PublicAPITests(SynchronousTestCase):
    def test_spec_names(self):
        from pyliteflux import (  # noqa: F401
            HTTPJSONResponse,
            HTTPResponse,
            Logger,
            Middleware,
            Route,
            Server,
            StreamResponse,
            g,
        )

    def test_all_is_exactly_what_is_exported(self):
        for name in pyliteflux.__all__:
            self.assertTrue(hasattr(pyliteflux, name), name)
        self.assertEqual(set(pyliteflux.__all__), {
            "Server", "Route", "Router", "Middleware", "g", "Logger", "HTTPResponse",
            "HTTPJSONResponse", "StreamResponse", "sse_event", "sse_response", "SSEStream",
            "in_thread", "Config", "HTTPError", "BadRequest", "NotFound", "MethodNotAllowed",
            "__version__",
        })
