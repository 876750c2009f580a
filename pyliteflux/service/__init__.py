"""Running an app: listeners, graceful shutdown, the reactor loop, app loading.

    listeners.ListenerService (one per endpoint) under shutdown.ServerService
    runner.run_until_stopped (server.run(), python -m pyliteflux)
    loading.load_app (twistd --app, pyliteflux.testing.load_app)
"""

from .listeners import ListenerService, Listening, endpoint_string
from .loading import AppLoadError, importing_app, load_app
from .runner import run_until_stopped
from .shutdown import Drainable, ServerService

__all__ = ["Listening", "ListenerService", "endpoint_string", "ServerService", "Drainable",
           "run_until_stopped", "importing_app", "load_app", "AppLoadError"]
