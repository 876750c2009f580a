"""pyliteflux: HTTP and a line-delimited JSON/XML TCP protocol from one app, on Twisted.

The public API is what users of the original PyLiteFlux write::

    from pyliteflux import Server, Route, Middleware, g, Logger
    from pyliteflux import HTTPResponse, HTTPJSONResponse, StreamResponse
"""

from .app import Server
from .config import Config
from .core.context import g
from .core.errors import BadRequest, HTTPError, MethodNotAllowed, NotFound
from .core.middleware import Middleware
from .core.responses import HTTPJSONResponse, HTTPResponse, StreamResponse
from .core.routing import Route, Router
from .core.sse import SSEStream, sse_event, sse_response
from .core.threaded import in_thread
from .log import Logger

__version__ = "0.1.0"

__all__ = [
    "Server",
    "Route",
    "Router",
    "Middleware",
    "g",
    "Logger",
    "HTTPResponse",
    "HTTPJSONResponse",
    "StreamResponse",
    "sse_event",
    "sse_response",
    "SSEStream",
    "in_thread",
    "Config",
    "HTTPError",
    "BadRequest",
    "NotFound",
    "MethodNotAllowed",
    "__version__",
]
