"""Middleware: code around every request, on HTTP, TCP or both.

``process_request`` runs in registration order; the first non-None result
becomes the response and the handler is skipped. ``process_response`` runs
in reverse order, for every middleware whose ``process_request`` ran, on
every response — short-circuits, 404/405 and errors included — and receives
the handler's raw result. Either may return a Deferred or be ``async def``.

Which methods a middleware overrides is looked up once, at registration.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, runtime_checkable

__all__ = ["Middleware", "IMiddleware", "MiddlewareManager"]

RequestHook = Callable[[Any], Any]
ResponseHook = Callable[[Any, Any], Any]
#: (process_request or None, process_response or None), pre-resolved per middleware
Chain = Tuple[Tuple[Optional[RequestHook], Optional[ResponseHook]], ...]


@runtime_checkable
class IMiddleware(Protocol):
    """What the chain calls; both methods are optional."""

    def process_request(self, request: Any) -> Any: ...

    def process_response(self, request: Any, response: Any) -> Any: ...


class Middleware:
    """Base class: override either method. The defaults do nothing."""

    def process_request(self, request: Any) -> Any:
        """Return None to continue, or a response to answer with it now."""
        return None

    def process_response(self, request: Any, response: Any) -> Any:
        """Return the (possibly changed) response."""
        return response


_BASE_REQUEST = Middleware.process_request
_BASE_RESPONSE = Middleware.process_response
#: the middleware chains: one per request kind. HTTP requests run "http";
#: commands run "tcp", whichever transport carried them (TCP, WebSocket).
CHAINS = ("http", "tcp")


def _hooks(mw: Any) -> Tuple[Optional[RequestHook], Optional[ResponseHook]]:
    """The bound methods worth calling; inherited no-ops are skipped."""
    cls = type(mw)
    req = getattr(mw, "process_request", None)
    resp = getattr(mw, "process_response", None)
    if getattr(cls, "process_request", None) is _BASE_REQUEST:
        req = None
    if getattr(cls, "process_response", None) is _BASE_RESPONSE:
        resp = None
    if req is None and resp is None and not isinstance(mw, Middleware):
        raise TypeError(f"{mw!r} has neither process_request nor process_response")
    return req, resp


class MiddlewareManager:
    """The ordered middleware list of a server, with one chain per protocol."""

    def __init__(self, chains: Tuple[str, ...] = CHAINS) -> None:
        self._entries: List[Tuple[Any, str]] = []
        self.chain_names = chains
        self._chains: Dict[str, Chain] = dict.fromkeys(chains, ())

    def add_middleware(self, middleware: Any, protocol: str = "both") -> Any:
        """Append ``middleware`` for ``"both"`` or one chain (``"http"``,
        ``"tcp"``); returns it."""
        allowed = ("both",) + self.chain_names
        if protocol not in allowed:
            raise ValueError(f"protocol must be one of {allowed}, got {protocol!r}")
        if isinstance(middleware, type):
            raise TypeError("add_middleware takes an instance: add_middleware(MyMiddleware())")
        _hooks(middleware)  # validate now, not on the first request
        self._entries.append((middleware, protocol))
        self._rebuild()
        return middleware

    add = add_middleware

    def remove_middleware(self, middleware: Any) -> None:
        """Take ``middleware`` out of every chain it is in."""
        self._entries = [(m, p) for m, p in self._entries if m is not middleware]
        self._rebuild()

    def _rebuild(self) -> None:
        for proto in self.chain_names:
            self._chains[proto] = tuple(
                _hooks(mw) for mw, p in self._entries if p in ("both", proto)
            )

    def chain(self, protocol: str) -> Chain:
        """The pre-resolved (process_request, process_response) pairs for a protocol."""
        return self._chains[protocol]

    @property
    def middlewares(self) -> List[Any]:
        return [m for m, _ in self._entries]

    def __len__(self) -> int:
        return len(self._entries)
