"""pyliteflux: HTTP and a line-delimited JSON/XML TCP protocol from one app, on Twisted.

The public API is what users of the original PyLiteFlux write::

    from pyliteflux import Server, Route, Middleware, g, Logger
    from pyliteflux import HTTPResponse, HTTPJSONResponse, StreamResponse
"""

from .config import Config
from .context import g
from .errors import BadRequest, HTTPError, MethodNotAllowed, NotFound
from .log import Logger
from .middleware import Middleware
from .responses import HTTPJSONResponse, HTTPResponse, StreamResponse
from .routing import Route, Router
from .server import Server
from .streaming import SSEStream, in_thread, sse_event, sse_response

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
