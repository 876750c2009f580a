"""The llhttp HTTP engine (``http_engine = "llhttp"``, SPEC §17): our own
HTTP/1.1 protocol on the reactor, parsing with httptools (llhttp).

    factory.LLHTTPFactory -> protocol.LLHTTPProtocol (parse, guards, order)
        -> respond.Responder -> core.pipeline -> respond (one write) / core.streaming

``raw.RawRequest`` is what ``core.requests.HTTPRequest`` wraps on this
engine; ``upgrade`` is the registry upgrade handlers (WebSocket) plug into.
See docs/http-engines.md.
"""

from .factory import LLHTTPFactory
from .raw import RawRequest
from .upgrade import find_upgrade, register_upgrade, unregister_upgrade

__all__ = ["LLHTTPFactory", "RawRequest", "register_upgrade", "unregister_upgrade",
           "find_upgrade"]
