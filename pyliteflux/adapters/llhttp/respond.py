"""The llhttp engine's half of the shared request path: run the pipeline
for a parsed request and write the value it returns.

Rendering is the twisted engine's: ``render_http`` (and the dict fast
path), ``error_value`` for what cannot be rendered, ``StreamResponse``
through ``core.streaming.StreamProducer`` (driving ``RawRequest`` as its
request) with the same header rules. Only the writing differs: a ready
response is one ``transport.write`` of bytes computed here.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from twisted.logger import Logger

from ...core.codec import dumps_json
from ...core.errors import internal_error_line
from ...core.pipeline import error_value
from ...core.requests import HTTPRequest
from ...core.responses import StreamResponse, render_http
from ...core.streaming import stream
from ..common import AdapterContext, cancel_if_pending, when_done
from ..sse import SSEEndpoint, SSERequest
from .raw import RawRequest
from .upgrade import find_upgrade
from .wire import head_bytes, json_prefix

__all__ = ["Responder"]

_log = Logger(namespace="pyliteflux.http")
_NO_BODY = (204, 304)
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
_STAR_405 = (b'{"error": "Method Not Allowed"}')


class Responder:
    """Answers the requests of one llhttp factory."""

    def __init__(self, context: AdapterContext) -> None:
        self.context = context
        self.config = context.config
        self._dispatch = context.dispatch
        self._jobs = context.jobs
        #: ``sse_path``'s built-in push stream (SPEC §14), as on the twisted engine
        self.sse = SSEEndpoint(context)
        self._sse_path = self.sse.path

    def start(self, proto: Any, raw: RawRequest) -> None:  # PERF: the request fast path
        """Answer ``raw`` (now the connection's current request)."""
        if raw.path == b"*":
            return self._star(proto, raw)
        if raw.path == self._sse_path:
            req: HTTPRequest = SSERequest(raw, self._jobs, self.sse)
        else:
            req = HTTPRequest(raw, self._jobs)
        raw.req = req  # type: ignore[attr-defined]
        rest = getattr(raw, "upgrade_rest", None)
        if rest is not None and self._upgrade(proto, raw, req):
            return None
        value = self._dispatch(req)
        if (type(value) is dict and req._bg is None and not raw.close_after
                and raw.method != b"HEAD" and raw.clientproto == b"HTTP/1.1"
                and not self.config.request_id_header):
            try:
                body = dumps_json(value)
            except Exception:
                body = None  # the general path renders (and logs) the error
            if body is not None:
                raw.finished = True
                raw.sentLength = len(body)
                proto.transport.write(json_prefix() + b"%d\r\n\r\n%s" % (len(body), body))
                proto.response_done(raw)
                return self._after_upgrade(proto, raw, rest)
        pending = when_done(value, self._later, self._failed, proto, raw, req)
        if pending is None:
            self.respond(proto, raw, req, value)
        else:
            proto.pending = pending
        return self._after_upgrade(proto, raw, rest)

    def _after_upgrade(self, proto: Any, raw: RawRequest, rest: Optional[bytes]) -> None:
        if rest is not None:
            proto.continue_after_upgrade(proto.release_held(raw))

    def _upgrade(self, proto: Any, raw: RawRequest, req: HTTPRequest) -> bool:
        handler = find_upgrade(raw, self.config)
        if handler is None:
            return False
        try:
            taken = handler(req, self.context)
        except Exception:
            _log.failure("upgrade handler failed for {request!r}", request=req)
            taken = None
        if taken is None:
            return False
        first = b""
        if isinstance(taken, tuple):  # (protocol, bytes it must see first)
            taken, first = taken
        proto.current = None
        proto.hand_over(taken, first + proto.release_held(raw))
        return True

    # -- writing -----------------------------------------------------------------------

    def respond(self, proto: Any, raw: RawRequest, req: HTTPRequest, value: Any) -> None:
        """Write the pipeline's ``value`` as the whole response to ``raw``."""
        if type(value) is not dict and isinstance(value, StreamResponse):
            return self._start_stream(proto, raw, req, value)
        try:
            if type(value) is dict:
                status, headers, body = 200, [(b"Content-Type", b"application/json")], \
                    dumps_json(value)
            else:
                status, headers, body = render_http(value)
        except Exception as exc:
            _log.failure("cannot render the result of {request!r}", request=req)
            status, headers, body = render_http(error_value(req, exc, self.config.debug))
        pairs = [(n, v) for n, v in headers if n.lower() not in _FRAMING]
        if status not in _NO_BODY:
            pairs.append((b"Content-Length", b"%d" % len(body)))
        self._write_whole(proto, raw, req, status, pairs,
                          b"" if status in _NO_BODY or raw.method == b"HEAD" else body)
        return None

    def _write_whole(self, proto: Any, raw: RawRequest, req: Optional[HTTPRequest],
                     status: int, pairs: List[Tuple[bytes, bytes]], body: bytes) -> None:
        if req is not None and self.config.request_id_header:
            pairs.append((b"X-Request-ID", req.request_id.encode("ascii")))  # type: ignore[attr-defined]
        if raw.close_after and raw.clientproto == b"HTTP/1.1":
            pairs.append((b"Connection", b"close"))
        raw.code = status
        raw.sentLength = len(body)
        raw.finished = True
        proto.transport.write(head_bytes(raw.clientproto, status, pairs) + body)
        proto.response_done(raw)

    def _star(self, proto: Any, raw: RawRequest) -> None:
        """``*`` as the target: ``OPTIONS *`` is an empty 200; else 405 (as Twisted)."""
        if raw.method == b"OPTIONS":
            self._write_whole(proto, raw, None, 200, [(b"Content-Length", b"0")], b"")
        else:
            self._write_whole(proto, raw, None, 405, [
                (b"Allow", b"OPTIONS"), (b"Content-Type", b"application/json"),
                (b"Content-Length", b"%d" % len(_STAR_405))], _STAR_405)

    def _later(self, value: Any, proto: Any, raw: RawRequest, req: HTTPRequest) -> None:
        if raw._disconnected or raw.finished:
            if isinstance(value, StreamResponse):
                value.close()
            return
        self.respond(proto, raw, req, value)

    def _failed(self, failure: Any, proto: Any, raw: RawRequest, req: HTTPRequest) -> None:
        if raw.finished or raw._disconnected:
            return
        if raw.startedWriting:
            proto.transport.loseConnection()
            return
        body = internal_error_line()
        self._write_whole(proto, raw, None, 500, [(b"Content-Type", b"application/json"),
                                                  (b"Content-Length", b"%d" % len(body))], body)

    def gone(self, raw: RawRequest, pending: Any) -> None:
        """The client went while ``raw`` was being answered: stop its work."""
        cancel_if_pending(pending)

    # -- streaming ---------------------------------------------------------------------

    def _start_stream(self, proto: Any, raw: RawRequest, req: HTTPRequest,
                      response: StreamResponse) -> None:
        try:
            status, headers = response.head()
        except Exception as exc:
            _log.failure("cannot start the stream of {request!r}", request=req)
            response.close()
            return self.respond(proto, raw, req, error_value(req, exc, self.config.debug))
        raw.setResponseCode(status)
        out = raw.responseHeaders
        for name, value in headers:
            lower = name.lower()
            if lower != b"connection" and lower not in _FRAMING:
                out.addRawHeader(name, value)
        if self.config.request_id_header:
            out.setRawHeaders(b"X-Request-ID", [req.request_id.encode("ascii")])  # type: ignore[attr-defined]
        if raw.method == b"HEAD":
            response.close()
            raw.finish()
            return None
        stream(raw, response, self.context.reactor, getattr(req, "context", None))
        return None
