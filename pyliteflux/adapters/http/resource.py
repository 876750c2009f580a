"""The HTTP adapter's ``twisted.web`` leaf resource over the pipeline.

``render`` wraps Twisted's request in ours, runs the pipeline and writes
the value it returns. A value that is ready at once is returned as bytes
(exactly what a bare ``twisted.web`` resource does); otherwise the resource
answers ``NOT_DONE_YET`` and writes when the Deferred fires — unless the
client has gone, in which case the pending work is cancelled and nothing is
written. Mount ``server.resource`` in any ``Site``; our own ``Site``
(``site.py``) adds the connection guards and a shorter request path.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.web import server
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from ...core.codec import dumps_json
from ...core.errors import internal_error_line
from ...core.pipeline import error_value
from ...core.requests import HTTPRequest
from ...core.responses import StreamResponse, render_http
from ...core.streaming import stream
from ..common import AdapterContext, cancel_if_pending, when_done
from ..sse import SSEEndpoint, SSERequest

__all__ = ["HTTPResource", "add_headers"]

_log = Logger(namespace="pyliteflux.http")
_NO_BODY = (204, 304)
_JSON_HEADERS: Any = ((b"Content-Type", b"application/json"),)

#: framing headers: Twisted's to set from what is actually sent
_FRAMING_ONLY = frozenset({b"content-length", b"transfer-encoding"})
#: headers Twisted sets on every response, which a handler's own replace
_DEFAULTS = frozenset({b"server", b"date"})


def add_headers(raw: Headers, headers: Any) -> None:
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


class HTTPResource(Resource):
    """Serves every path of a pyliteflux app over HTTP."""

    isLeaf = True

    def __init__(self, context: AdapterContext) -> None:
        super().__init__()
        self.context = context
        self._dispatch = context.dispatch
        self._jobs = context.jobs
        #: ``sse_path``'s built-in push stream (SPEC §14) and its open streams
        self.sse = SSEEndpoint(context)

    def getChildWithDefault(self, path: bytes, request: Any) -> "HTTPResource":
        return self

    def render(self, request: Any) -> Any:
        sse = self.sse
        if sse.path is not None and request.path == sse.path:
            req: HTTPRequest = SSERequest(request, self._jobs, sse)
        else:
            req = HTTPRequest(request, self._jobs)
        return self.settle(request, req, self._dispatch(req))

    def settle(self, request: Any, req: HTTPRequest, value: Any) -> Any:
        """Respond with the pipeline's ``value``: the body bytes when they are
        ready (``render``'s contract), else ``NOT_DONE_YET``."""
        pending = when_done(value, self._respond_later, self._write_failed, request, req)
        if pending is None:
            return self._respond(request, req, value, sync=True)
        request.notifyFinish().addErrback(self._client_gone, pending, req)
        return server.NOT_DONE_YET

    # -- writing ---------------------------------------------------------------

    def _respond(self, request: Any, req: HTTPRequest, value: Any, sync: bool) -> Any:
        config = self.context.config
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
        add_headers(raw, headers)
        self._finish_headers(request, req)
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

    def _finish_headers(self, request: Any, req: HTTPRequest) -> None:
        """What every response gets last: the request id header (when asked
        for) and its background jobs, started once the response is out."""
        if self.context.config.request_id_header:
            request.responseHeaders.setRawHeaders(
                b"X-Request-ID", [req.request_id.encode("ascii")])  # type: ignore[attr-defined]
        if req._bg:
            request.notifyFinish().addBoth(lambda _: self._jobs.start_after(req))

    def _respond_later(self, value: Any, request: Any, req: HTTPRequest) -> None:
        if getattr(req, "_gone", False) or request.finished:
            if isinstance(value, StreamResponse):
                value.close()
            return
        self._respond(request, req, value, sync=False)

    def _start_stream(self, request: Any, req: HTTPRequest, response: StreamResponse,
                      sync: bool) -> Any:
        try:
            status, headers = response.head()
        except Exception as exc:
            _log.failure("cannot start the stream of {request!r}", request=req)
            response.close()
            return self._respond(request, req, error_value(req, exc, self.context.config.debug),
                                 sync=sync)
        request.setResponseCode(status)
        raw = request.responseHeaders
        add_headers(raw, [(n, v) for n, v in headers if n.lower() != b"connection"])
        self._finish_headers(request, req)
        if req.method == "HEAD":
            response.close()  # never started: its finally (if any) runs now
            request.write(b"")
            request.finish()
            return server.NOT_DONE_YET
        # The body is produced later, from reactor callbacks: run its steps in
        # the request's context (so ``g`` works inside the generator) when the
        # pipeline recorded one on the request.
        stream(request, response, self.context.reactor, getattr(req, "context", None))
        return server.NOT_DONE_YET

    # -- failures ------------------------------------------------------------------

    @staticmethod
    def _client_gone(failure: Any, pending: Any, req: HTTPRequest) -> None:
        req._gone = True  # type: ignore[attr-defined]
        cancel_if_pending(pending)

    @staticmethod
    def _write_failed(failure: Any, request: Any, req: HTTPRequest) -> None:
        if not request.finished and not getattr(request, "_disconnected", False):
            request.setResponseCode(500)
            request.write(internal_error_line())
            request.finish()
