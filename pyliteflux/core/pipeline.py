"""The one dispatch pipeline both adapters use.

    request → process_request… → route → handler → …process_response → value

It is protocol-neutral: it takes one of our requests and hands back the
final *value* (what the handler returned, after the middlewares), or a
Deferred of it. Rendering that value to bytes is the adapter's last step.

Each request runs in its own ``contextvars.Context`` (that is what makes
``g`` per-request), and everything the pipeline does for it later — after a
Deferred fires — is run in that context again. Work that completes
synchronously stays synchronous: a plain handler returning a dict, with
plain middlewares, never allocates a Deferred.
"""

from __future__ import annotations

import contextvars
import traceback
from typing import Any, Callable, Dict, Generator, Optional, Union

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .codec import DecodeError
from .context import enter_request
from .errors import INTERNAL_ERROR, BadRequest, HTTPError
from .middleware import MiddlewareManager
from .requests import Request
from .routing import Router

__all__ = ["Pipeline", "error_value", "is_deferred", "PLAIN_TYPES"]

_log = Logger(namespace="pyliteflux.pipeline")

_Step = Generator[Deferred, Any, Any]


#: result types that are never awaitable: checked first, so the common case
#: costs one ``type()`` lookup instead of several attribute probes (# PERF)
PLAIN_TYPES = _PLAIN = frozenset({dict, list, str, bytes, tuple, int, float, bool, type(None)})


def _awaitable(value: Any) -> Optional[Deferred]:
    """A Deferred to wait on if ``value`` is one (or a coroutine), else None."""
    if type(value) in _PLAIN:
        return None
    if isinstance(value, Deferred):
        return value
    if hasattr(value, "__await__") and hasattr(value, "send"):
        return Deferred.fromCoroutine(value)
    return None


def error_value(request: Request, exc: BaseException, debug: bool = False) -> Any:
    """The value that stands for an error, in the request's own terms.

    An ``HTTPError`` keeps its status and body; anything else is a 500
    (with the exception and traceback in the body only when ``debug``).
    The request kind turns that into its value (an ``HTTPJSONResponse`` for
    HTTP, the error dict for commands): there is no protocol branch here.
    """
    if isinstance(exc, HTTPError):
        return request.error_value(exc, exc.body())
    body = dict(INTERNAL_ERROR)
    if debug:
        body["exception"] = f"{type(exc).__name__}: {exc}"
        body["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return request.error_value(None, body)


def is_deferred(value: Any) -> bool:
    """Whether a pipeline result is still to come (a Deferred).

    # PERF: the plain types are ruled out by one ``type()`` lookup first:
    ``Deferred`` is an ABC, and ``isinstance`` on it goes through ABCMeta.
    """
    return type(value) not in PLAIN_TYPES and isinstance(value, Deferred)


class Pipeline:
    """Middleware chain + router + handler, for one server."""

    def __init__(self, router: Router, middleware: MiddlewareManager, debug: Callable[[], bool]):
        self.router = router
        self.middleware = middleware
        self._chains = middleware._chains  # live: add_middleware rebuilds its entries
        self._debug = debug
        #: protocol -> ``observe(request, value)``, called with what ``dispatch``
        #: returns (a value or a Deferred): how metrics count commands
        self.observers: Dict[str, Callable[[Request, Any], None]] = {}

    def dispatch(self, request: Request) -> Any:
        """Run ``request`` through the pipeline in a fresh context.

        Returns the final value, or a Deferred that fires with it (never
        errbacks: failures become error values).
        """
        ctx = contextvars.copy_context()
        value = ctx.run(self._start, request, ctx)
        if self.observers:
            observe = self.observers.get(request.protocol)
            if observe is not None:
                observe(request, value)
        return value

    def _start(self, request: Request, ctx: contextvars.Context) -> Any:
        """Run the pipeline synchronously for as long as nothing must be
        awaited; at the first awaitable, hand the rest to a generator
        (``_after_request_hook`` / ``_after_handler`` / ``_after_response_hook``)
        driven by ``_drive``."""
        request.context = ctx  # type: ignore[attr-defined]  # streams re-enter it
        request.request_id = enter_request()  # type: ignore[attr-defined]
        chain = self._chains[request.protocol]
        ran = 0
        response = None
        try:
            for process_request, _ in chain:
                ran += 1
                if process_request is None:
                    continue
                response = process_request(request)
                if response is not None:
                    if type(response) not in _PLAIN:
                        d = _awaitable(response)
                        if d is not None:
                            return _drive(self._after_request_hook(request, chain, ran, d), ctx)
                    break
            else:
                response = self._handle(request)
                if type(response) not in _PLAIN:
                    d = _awaitable(response)
                    if d is not None:
                        return _drive(self._after_handler(request, chain, ran, d), ctx)
        except Exception as exc:
            response = self._fail(request, exc)
        if not ran:
            return response
        index, response = self._response_phase(request, chain, ran - 1, response)
        if index is None:
            return response
        return _drive(self._after_response_hook(request, chain, index, response), ctx)

    def _response_phase(self, request: Request, chain: Any, index: int,
                        response: Any) -> Any:
        """``process_response`` from ``chain[index]`` down to the first, for as
        long as each returns a plain value: ``(None, final response)``; at the
        first awaitable, ``(index to continue from, Deferred to wait on)``."""
        while index >= 0:
            process_response = chain[index][1]
            index -= 1
            if process_response is None:
                continue
            try:
                result = process_response(request, response)
                if type(result) not in _PLAIN:
                    d = _awaitable(result)
                    if d is not None:
                        return index, d
                response = result
            except Exception as exc:
                response = self._fail(request, exc)
        return None, response

    def _handle(self, request: Request) -> Any:
        """Route the request and call its handler (raises NotFound etc.)."""
        return request.find_handler(self.router)(request)

    def _fail(self, request: Request, exc: BaseException) -> Any:
        request.failed = True
        if isinstance(exc, DecodeError):
            exc = BadRequest(str(exc))
        if isinstance(exc, CancelledError):
            # the client went away, or shutdown gave up on it: not a bug
            _log.info("{request!r} cancelled", request=request)
        elif not isinstance(exc, HTTPError):
            _log.failure("error while handling {request!r}", failure=Failure(exc),
                         request=request)
        return error_value(request, exc, self._debug())

    # -- the asynchronous continuations -------------------------------------------------

    def _after_request_hook(self, request: Request, chain: Any, ran: int, d: Deferred) -> _Step:
        """Resume after ``process_request`` number ``ran`` returned an awaitable."""
        try:
            response = yield d
            while response is None and ran < len(chain):
                process_request = chain[ran][0]
                ran += 1
                if process_request is None:
                    continue
                response = process_request(request)
                d2 = _awaitable(response)
                if d2 is not None:
                    response = yield d2
            if response is None:
                response = self._handle(request)
                d2 = _awaitable(response)
                if d2 is not None:
                    response = yield d2
        except Exception as exc:
            response = self._fail(request, exc)
        return (yield from self._responses(request, chain, ran - 1, response))

    def _after_handler(self, request: Request, chain: Any, ran: int, d: Deferred) -> _Step:
        """Resume after the handler returned an awaitable."""
        try:
            response = yield d
        except Exception as exc:
            response = self._fail(request, exc)
        return (yield from self._responses(request, chain, ran - 1, response))

    def _after_response_hook(self, request: Request, chain: Any, index: int,
                             d: Deferred) -> _Step:
        """Resume after a ``process_response`` returned an awaitable."""
        try:
            response = yield d
        except Exception as exc:
            response = self._fail(request, exc)
        return (yield from self._responses(request, chain, index, response))

    def _responses(self, request: Request, chain: Any, index: int, response: Any) -> _Step:
        """``process_response`` from ``chain[index]`` down to the first, awaiting as needed."""
        while True:
            next_index, response = self._response_phase(request, chain, index, response)
            if next_index is None:
                return response
            index = next_index
            try:
                response = yield response
            except Exception as exc:
                response = self._fail(request, exc)


_NOT_FIRED = object()


class _Resume:
    """Callback on an awaited Deferred: captures a result that is already
    there (so the caller continues synchronously) or resumes the pipeline
    later, in the request's context."""

    __slots__ = ("gen", "ctx", "waiting", "result", "out")

    def __init__(self, gen: _Step, ctx: contextvars.Context) -> None:
        self.gen = gen
        self.ctx = ctx
        self.waiting = False
        self.result: Any = _NOT_FIRED
        self.out: Optional[Deferred] = None

    def __call__(self, result: Any) -> None:
        if not self.waiting:
            self.result = result
            return None
        out = self.out
        final = self.ctx.run(_drive, self.gen, self.ctx, result, isinstance(result, Failure))
        if isinstance(final, Deferred):
            final.chainDeferred(out)  # type: ignore[arg-type]
        elif not out.called:  # type: ignore[union-attr]
            out.callback(final)  # type: ignore[union-attr]
        return None


def _drive(gen: _Step, ctx: contextvars.Context, value: Any = None,
           failed: bool = False) -> Union[Any, Deferred]:
    """Run the step generator until it finishes or must really wait.

    While each yielded Deferred has already fired, keep going synchronously;
    otherwise return a Deferred of the final value and resume, in ``ctx``,
    when the awaited one fires. Cancelling that Deferred cancels the awaited
    one (so a client that goes away cancels the handler's work).
    """
    while True:
        try:
            if failed:
                d = value.throwExceptionIntoGenerator(gen)
            else:
                d = gen.send(value)
        except StopIteration as stop:
            return stop.value
        resume = _Resume(gen, ctx)
        d.addBoth(resume)
        if resume.result is _NOT_FIRED:
            break
        value = resume.result
        failed = isinstance(value, Failure)

    out: Deferred = Deferred(lambda _: d.cancel())
    resume.out = out
    resume.waiting = True
    return out
