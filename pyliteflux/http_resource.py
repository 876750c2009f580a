"""The HTTP adapter: one ``twisted.web`` leaf resource over the pipeline.

``render`` wraps Twisted's request in ours, runs the pipeline and renders
the value it returns. A value that is ready at once is returned as bytes
(exactly what a bare ``twisted.web`` resource does); otherwise the resource
answers ``NOT_DONE_YET`` and writes when the Deferred fires — unless the
client has gone, in which case the pending work is cancelled and nothing is
written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web import server
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
_NO_BODY = (204, 304)
_JSON_HEADERS: Any = ((b"Content-Type", b"application/json"),)


#: the request class our Site uses (kept under this name for compatibility)
TwistedRequest = GuardedRequest


class Site(server.Site):
    """A ``Site`` with our connection guards and an access log through
    ``twisted.logger`` (when ``info`` is on)."""

    requestFactory = GuardedRequest
    protocol = GuardedChannel  # type: ignore[assignment]
    noisy = False
    _access_log = Logger(namespace="pyliteflux.access")

    def __init__(self, resource: "HTTPResource", **kwargs: Any) -> None:
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
            self._access_log.info(
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
        value = self._dispatch(req)
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
            return self._start_stream(request, req, value)
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
        for name, val in headers:
            raw.addRawHeader(name, val)
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

    def _start_stream(self, request: Any, req: HTTPRequest, response: StreamResponse) -> Any:
        try:
            headers = normalise_headers(response.headers)
            status = response.status
            if type(status) is not int or not 100 <= status <= 599:
                raise TypeError(f"HTTP status must be an int in 100..599, got {status!r}")
        except Exception as exc:
            response.close()
            return self._respond(request, req, error_value(req, exc, self.app.config.debug),
                                 sync=False)
        request.setResponseCode(status)
        raw = request.responseHeaders
        if not any(n.lower() == b"content-type" for n, _ in headers):
            raw.setRawHeaders(b"Content-Type", [response.content_type.encode("latin-1")])
        for name, val in headers:
            if name.lower() in (b"connection", b"content-length", b"transfer-encoding"):
                continue  # hop-by-hop/framing headers are Twisted's to set
            raw.addRawHeader(name, val)
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
