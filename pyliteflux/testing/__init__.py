"""Helpers for testing pyliteflux apps with trial or pytest-twisted.

- ``TestClient(server)``: drive HTTP routes through the app's production
  ``Site`` and TCP commands through its line protocol, both over in-memory
  transports, with no ports. Background jobs run synchronously, or are
  captured for the test to run when it chooses.
- ``serve(server)``: run the server on free loopback ports for end-to-end
  tests; the returned object's ``stop()`` tears it down cleanly.
- ``load_app("module:attribute")``: import a module that ends in
  ``server.run()`` (like the seed's examples) without blocking, with its
  routes kept out of the process-wide default router.

Every method that waits returns a Deferred: return or ``yield`` it from a
trial test, or ``await``/``pytest_twisted.ensureDeferred`` it under pytest.
"""

from .client import TestClient
from .http import TestResponse
from .jobs import SyncJobs
from .loopback import RunningServer, load_app, serve
from .tcp import TCPTestConnection

__all__ = ["TestClient", "TestResponse", "TCPTestConnection", "serve", "RunningServer",
           "load_app", "SyncJobs"]
