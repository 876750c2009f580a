"""Our ``twisted.web`` Site: connection guards, an access log, a shorter
request path, and the drain steps of graceful shutdown for HTTP.

``TwistedRequest.process`` skips Twisted's resource walk when the site
serves our ``HTTPResource`` (which answers every path itself) and writes
the common dict response directly: the same bytes as Twisted's own path
(``tests/test_adapters_http_site.py`` compares them), for less work.

The paths of SPEC §14 take Twisted's own way (one set lookup on the fast
path decides): ``websocket_path`` with ``Upgrade: websocket`` goes to the
WebSocket resource (``Site.getResourceFor``), ``sse_path`` to the
``HTTPResource``, which serves it as an SSE push target unless the app has
a route there. The WebSocket factory and the open SSE streams are part of
this Site's ``Drainable``: shutdown says goodbye to them with the rest.
"""

from __future__ import annotations

from time import perf_counter, time
from typing import Any, List
from urllib.parse import unquote_to_bytes as unquote

from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import Request as HTTPChannelRequest
from twisted.web.http import datetimeToString

from ...core.codec import dumps_json
from ...core.requests import HTTPRequest
from ...core.routing import UNMATCHED
from ...twisted_internals import FAST_HEADERS, channel_requests, raw_headers
from ..common import ConnectionSet, log_response
from ..websocket import WebSocketFactory, WebSocketUpgradeResource, is_upgrade
from .channel import ConnectionLimiter, GuardedChannel, GuardedRequest
from .resource import HTTPResource

__all__ = ["Site", "TwistedRequest", "http_date"]

# (module level: a Logger that is a class attribute takes the class's name)
_SERVER = server.version
_JSON = b"application/json"

_date: List[Any] = [-1, b""]  # [second, its HTTP date]


def http_date() -> bytes:
    """The ``Date`` header value for now, formatted once per second."""
    now = int(time())
    if now != _date[0]:
        _date[1] = datetimeToString(now)
        _date[0] = now
    return _date[1]


class TwistedRequest(GuardedRequest):
    """The request our ``Site`` makes: Twisted's, with a shorter ``process``
    when the site's resource is our ``HTTPResource``. That resource serves
    every path itself, so there is no tree to walk, no encoder to look up
    and no ``UnsupportedMethod`` to translate; and the common response — a
    dict from a plain handler — is written here without the general
    renderer. Anything else takes Twisted's own way."""

    #: the registered pattern the request matched (``HTTPRequest.find_handler``)
    route = UNMATCHED
    #: ``perf_counter()`` when processing began: the access log's and metrics' duration
    started = 0.0

    def process(self) -> None:  # PERF: the request fast path
        self.started = perf_counter()
        site = self.channel.site  # type: ignore[attr-defined]
        resource = site.resource
        path = self.path
        if (type(resource) is not HTTPResource or path == b"*" or not FAST_HEADERS
                or path in site.special_paths):  # PERF: one set lookup for the §14 paths
            return super().process()
        self.site = site
        raw = raw_headers(self.responseHeaders)
        raw[b"Server"] = [_SERVER]  # a new list each time: others may append
        raw[b"Date"] = [http_date()]
        # what Twisted's traversal would leave behind, for code that looks
        self.prepath: List[bytes] = []
        self.sitepath: List[bytes] = []
        segments = path[1:].split(b"/")
        self.postpath = segments if b"%" not in path else [unquote(s) for s in segments]
        try:
            req = HTTPRequest(self, resource._jobs)
            value = resource._dispatch(req)
            body = None
            if (type(value) is dict and req._bg is None and req.method != "HEAD"
                    and not resource.context.config.request_id_header
                    and b"Content-Type" not in raw):
                try:
                    body = dumps_json(value)
                except Exception:
                    pass  # the general path renders (and logs) the error
            if body is not None:
                raw[b"Content-Type"] = [_JSON]
                raw[b"Content-Length"] = [b"%d" % len(body)]
                HTTPChannelRequest.write(self, body)  # Content-Type is set: skip that check
            else:
                body = resource.settle(self, req, value)
                if body is server.NOT_DONE_YET:
                    return
                self.setHeader(b"Content-Length", b"%d" % len(body))
                self.write(body)
            self.finish()
        except BaseException:
            self.processingFailed(Failure())


class Site(server.Site, ConnectionSet):
    """A ``Site`` with our connection guards, an access log through
    ``twisted.logger`` (when ``info`` is on), and the HTTP side of graceful
    shutdown (``service.shutdown.Drainable``)."""

    requestFactory = TwistedRequest
    protocol = GuardedChannel  # type: ignore[assignment]
    noisy = False
    side = "http"

    def __init__(self, resource: HTTPResource, **kwargs: Any) -> None:
        # forms are parsed by pyliteflux, lazily and with JSON errors; Twisted's
        # eager parse would answer a bad multipart body with a bare 400
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(resource, **kwargs)
        self.resource_ = resource
        context = resource.context
        self.config = context.config
        self.limiter = ConnectionLimiter()
        self.metrics = metrics = resource.context.metrics
        if metrics is not None:
            metrics.watch(self)  # its open connections are a gauge, read when scraped
        self.sse = resource.sse
        ws_path = self.config.websocket_path
        self.websocket_path = ws_path.encode("utf-8") if ws_path else None
        self.websocket = WebSocketFactory(context) if ws_path else None
        self.websocket_resource = (WebSocketUpgradeResource(self.websocket)
                                   if self.websocket is not None else None)
        #: the paths the request fast path leaves to Twisted's own way
        self.special_paths = frozenset(p for p in (self.websocket_path, self.sse.path) if p)

    def getResourceFor(self, request: Any) -> Any:
        """``websocket_path`` with ``Upgrade: websocket`` is the WebSocket
        resource; everything else is the app's."""
        if (request.path == self.websocket_path and self.websocket_resource is not None
                and is_upgrade(request)):
            return self.websocket_resource
        return super().getResourceFor(request)

    def buildProtocol(self, addr: Any) -> Any:
        config = self.config
        host = getattr(addr, "host", None)
        if not self.limiter.acquire(host, config.max_http_connections,
                                    config.max_http_connections_per_ip):
            return None  # Twisted closes the connection at once
        channel = super().buildProtocol(addr)
        channel.configure(config)
        channel.limiter = self.limiter
        channel.limiter_host = host
        channel._limiter_released = False
        self.track(channel)
        return channel

    def log(self, request: Any) -> None:  # Twisted calls this as each response finishes
        log_response(self.metrics, self.config.info, request,
                     getattr(request.getClientAddress(), "host", "-"))

    # -- Drainable -----------------------------------------------------------------------

    def close_idle(self) -> None:
        """Close idle keep-alive connections; let busy ones finish their
        requests and close after the response (``Connection: close``)."""
        now = self.resource.context.reactor.seconds()  # the shutdown's clock
        for channel in self:
            requests = channel_requests(channel)
            if not requests:
                if not self.spare_fresh(channel, now):
                    channel.loseConnection()
                continue
            channel.persistent = False
            for request in requests:
                if not request.startedWriting:
                    request.responseHeaders.setRawHeaders(b"Connection", [b"close"])

    def busy(self) -> List[str]:
        owns = self.sse.owns  # an open SSE stream is long-lived, not in flight
        found = [f"{r.method.decode('latin-1')} {r.uri.decode('latin-1')}"
                 for channel in self for r in channel_requests(channel) if not owns(r)]
        if self.websocket is not None:
            found.extend(self.websocket.busy())
        return found

    def say_goodbye(self) -> int:
        """WebSocket clients get ``{"type": "shutdown"}`` and a 1001 close; SSE
        streams end. (Other HTTP responses end with ``Connection: close``.)"""
        told = self.sse.say_goodbye()
        if self.websocket is not None:
            told += self.websocket.say_goodbye()
        return told

    def open_count(self) -> int:
        count = super().open_count()
        if self.websocket is not None:
            count += self.websocket.open_count()
        return count

    def abort(self) -> List[str]:
        aborted = self.abort_connections("http")
        if self.websocket is not None:
            aborted.extend(self.websocket.abort())
        return aborted
