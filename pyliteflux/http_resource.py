"""The HTTP adapter: one ``twisted.web`` leaf resource over the pipeline.

``render`` wraps Twisted's request in ours, runs the pipeline and renders
the value it returns. A value that is ready at once is returned as bytes
(exactly what a bare ``twisted.web`` resource does); otherwise the resource
answers ``NOT_DONE_YET`` and writes when the Deferred fires — unless the
client has gone, in which case the pending work is cancelled and nothing is
written.

Our ``Site`` (the channel guards of ``http_channel``, an access log) makes
``TwistedRequest``s, whose ``process`` skips Twisted's resource walk for this
resource and writes the common dict response itself: the same bytes as
Twisted's own path (``tests/test_http_fast_path.py``), for less work.
"""

from __future__ import annotations

from time import time
from typing import TYPE_CHECKING, Any, List
from urllib.parse import unquote_to_bytes as unquote

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import Request as HTTPChannelRequest
from twisted.web.http import datetimeToString
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from .codec import dumps_json
from .http_channel import ConnectionLimiter, GuardedChannel, GuardedRequest
from .pipeline import _PLAIN, error_value
from .requests import HTTPRequest
from .responses import StreamResponse, normalise_headers, render_http
from .streaming import stream

if TYPE_CHECKING:  # pragma: no cover
    from .server import Server

__all__ = ["HTTPResource", "Site", "TwistedRequest"]

_log = Logger(namespace="pyliteflux.http")
# (module level: a Logger that is a class attribute takes the class's name)
_access_log = Logger(namespace="pyliteflux.access")
_NO_BODY = (204, 304)
_JSON_HEADERS: Any = ((b"Content-Type", b"application/json"),)


_date: List[Any] = [-1, b""]  # [second, its HTTP date]


def http_date() -> bytes:
    """The ``Date`` header value for now, formatted once per second."""
    now = int(time())
    if now != _date[0]:
        _date[1] = datetimeToString(now)
        _date[0] = now
    return _date[1]


#: framing headers: Twisted's to set from what is actually sent
_FRAMING_ONLY = frozenset({b"content-length", b"transfer-encoding"})
#: headers Twisted sets on every response, which a handler's own replace
_DEFAULTS = frozenset({b"server", b"date"})


def _add_headers(raw: Headers, headers: Any) -> None:
    """Add a response's headers; its own ``Server`` or ``Date`` replaces the
    default one (other names may repeat, e.g. ``Set-Cookie``). Framing
    headers (``Content-Length``, ``Transfer-Encoding``) are Twisted's to set
    from the body actually sent: a handler's would contradict it."""
    replaced = set()
    for name, val in headers:
        lower = name.lower()
        if lower in _FRAMING_ONLY:
            continue
        if lower in _DEFAULTS and lower not in replaced:
            raw.removeHeader(name)
            replaced.add(lower)
        raw.addRawHeader(name, val)


_SERVER = server.version
_JSON = b"application/json"


def _headers_are_a_dict() -> bool:
    """Whether ``Headers`` keeps canonical names in a ``_rawHeaders`` dict, as
    Twisted 22 to 26 do. Then the few headers we make ourselves (constant
    names, values without CR or LF) are stored directly instead of being
    encoded and sanitised again on every request — about a tenth of the
    cost of a small response. Any other Twisted uses the public API."""
    h = Headers()
    try:
        for name in (b"Server", b"Date", b"Content-Type", b"Content-Length"):
            h.setRawHeaders(name.lower(), [b"x"])
        return h._rawHeaders == dict.fromkeys(  # type: ignore[attr-defined]
            (b"Server", b"Date", b"Content-Type", b"Content-Length"), [b"x"])
    except Exception:  # pragma: no cover - a Twisted with other internals
        return False


_FAST_HEADERS = _headers_are_a_dict()


class TwistedRequest(GuardedRequest):
    """The request our ``Site`` makes: Twisted's, with a shorter ``process``
    when the site's resource is our ``HTTPResource``. That resource serves
    every path itself, so there is no tree to walk, no encoder to look up
    and no ``UnsupportedMethod`` to translate; and the common response — a
    dict from a plain handler — is written here without the general
    renderer. Anything else takes Twisted's own way."""

    def process(self) -> None:
        site = self.channel.site  # type: ignore[attr-defined]
        resource = site.resource
        path = self.path
        if type(resource) is not HTTPResource or path == b"*" or not _FAST_HEADERS:
            return super().process()
        self.site = site
        raw = self.responseHeaders._rawHeaders  # see _headers_are_a_dict
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
                    and not resource.app.config.request_id_header
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
                body = resource._settle(self, req, value)
                if body is server.NOT_DONE_YET:
                    return
                self.setHeader(b"Content-Length", b"%d" % len(body))
                self.write(body)
            self.finish()
        except BaseException:
            self.processingFailed(Failure())


class Site(server.Site):
    """A ``Site`` with our connection guards and an access log through
    ``twisted.logger`` (when ``info`` is on)."""

    requestFactory = TwistedRequest
    protocol = GuardedChannel  # type: ignore[assignment]
    noisy = False

    def __init__(self, resource: "HTTPResource", **kwargs: Any) -> None:
        # forms are parsed by pyliteflux, lazily and with JSON errors; Twisted's
        # eager parse would answer a bad multipart body with a bare 400
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(resource, **kwargs)
        self.resource_ = resource
        self.limiter = ConnectionLimiter()

    def buildProtocol(self, addr: Any) -> Any:
        config = self.resource_.app.config
        host = getattr(addr, "host", None)
        if not self.limiter.acquire(host, config.max_http_connections,
                                    config.max_http_connections_per_ip):
            return None  # Twisted closes the connection at once
        channel = super().buildProtocol(addr)
        channel.configure(config)
        channel.limiter = self.limiter
        channel.limiter_host = host
        channel._limiter_released = False
        return channel

    def log(self, request: Any) -> None:  # Twisted calls this as each response finishes
        if self.resource_.app.config.info:
            addr = request.getClientAddress()
            _access_log.info(
                "{client} {method} {uri} {code} {length}",
                client=getattr(addr, "host", "-"),
                method=request.method.decode("ascii", "replace"),
                uri=request.uri.decode("ascii", "replace"),
                code=request.code,
                length=request.sentLength,
            )


class HTTPResource(Resource):
    """Serves every path of a pyliteflux ``Server`` over HTTP."""

    isLeaf = True

    def __init__(self, server: "Server") -> None:
        super().__init__()
        self.app = server  # not .server: twisted.web's Resource has its own
        self._pipeline = server.pipeline
        self._dispatch = server.pipeline.dispatch
        self._jobs = server.jobs

    def getChildWithDefault(self, path: bytes, request: Any) -> "HTTPResource":
        return self

    def render(self, request: Any) -> Any:
        req = HTTPRequest(request, self._jobs)
        return self._settle(request, req, self._dispatch(req))

    def _settle(self, request: Any, req: HTTPRequest, value: Any) -> Any:
        """Respond with the pipeline's ``value``: the body bytes when they are
        ready (``render``'s contract), else ``NOT_DONE_YET``."""
        # (Deferred is an ABC: a plain isinstance() would go through ABCMeta)
        if type(value) not in _PLAIN and isinstance(value, Deferred):
            gone = request.notifyFinish()
            gone.addErrback(self._client_gone, value, req)
            value.addCallback(self._respond_later, request, req)
            value.addErrback(self._unexpected, request)
            return server.NOT_DONE_YET
        return self._respond(request, req, value, sync=True)

    # -- writing ---------------------------------------------------------------

    def _respond(self, request: Any, req: HTTPRequest, value: Any, sync: bool) -> Any:
        config = self.app.config
        if type(value) is not dict and isinstance(value, StreamResponse):
            return self._start_stream(request, req, value, sync)
        try:
            if type(value) is dict:  # the common case, without the general renderer
                status, headers, body = 200, _JSON_HEADERS, dumps_json(value)
            else:
                status, headers, body = render_http(value)
        except Exception as exc:
            _log.failure("cannot render the result of {request!r}", request=req)
            status, headers, body = render_http(error_value(req, exc, config.debug))
        if status != 200:
            request.setResponseCode(status)
        raw = request.responseHeaders
        _add_headers(raw, headers)
        if config.request_id_header:
            raw.setRawHeaders(b"X-Request-ID", [req.request_id.encode("ascii")])  # type: ignore[attr-defined]
        if req._bg:
            self._run_jobs_after(request, req)
        if status in _NO_BODY or req.method == "HEAD":
            if status not in _NO_BODY:
                request.setHeader(b"Content-Length", b"%d" % len(body))
            request.write(b"")
            request.finish()
            return server.NOT_DONE_YET
        if sync:
            return body
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()
        return None

    def _respond_later(self, value: Any, request: Any, req: HTTPRequest) -> None:
        if getattr(req, "_gone", False) or request.finished:
            if isinstance(value, StreamResponse):
                value.close()
            return
        self._respond(request, req, value, sync=False)

    def _start_stream(self, request: Any, req: HTTPRequest, response: StreamResponse,
                      sync: bool) -> Any:
        try:
            headers = normalise_headers(response.headers)
            status = response.status
            if type(status) is not int or not 100 <= status <= 599:
                raise TypeError(f"HTTP status must be an int in 100..599, got {status!r}")
        except Exception as exc:
            _log.failure("cannot start the stream of {request!r}", request=req)
            response.close()
            return self._respond(request, req, error_value(req, exc, self.app.config.debug),
                                 sync=sync)
        request.setResponseCode(status)
        raw = request.responseHeaders
        if not any(n.lower() == b"content-type" for n, _ in headers):
            raw.setRawHeaders(b"Content-Type", [response.content_type.encode("latin-1")])
        _add_headers(raw, [(n, v) for n, v in headers if n.lower() != b"connection"])
        if self.app.config.request_id_header:
            raw.setRawHeaders(b"X-Request-ID", [req.request_id.encode("ascii")])  # type: ignore[attr-defined]
        if req._bg:
            self._run_jobs_after(request, req)
        if req.method == "HEAD":
            response.close()  # never started: its finally (if any) runs now
            request.write(b"")
            request.finish()
            return server.NOT_DONE_YET
        # The body is produced later, from reactor callbacks: run its steps in
        # the request's context (so ``g`` works inside the generator) when the
        # pipeline recorded one on the request.
        stream(request, response, self.app.reactor, getattr(req, "context", None))
        return server.NOT_DONE_YET

    def _run_jobs_after(self, request: Any, req: HTTPRequest) -> None:
        jobs = req._bg.take()  # type: ignore[union-attr]
        request.notifyFinish().addBoth(lambda _: self._jobs.submit_all(jobs))

    # -- failures ------------------------------------------------------------------

    @staticmethod
    def _client_gone(failure: Any, pending: Deferred, req: HTTPRequest) -> None:
        req._gone = True  # type: ignore[attr-defined]
        if not pending.called:
            pending.cancel()

    @staticmethod
    def _unexpected(failure: Any, request: Any) -> None:
        _log.failure("unexpected error writing a response", failure=failure)
        if not request.finished and not getattr(request, "_disconnected", False):
            request.setResponseCode(500)
            request.write(b'{"error": "Internal Server Error"}')
            request.finish()
