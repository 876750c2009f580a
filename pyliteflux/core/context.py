"""The request context ``g``: one importable object, one namespace per request.

``g`` reads and writes a namespace held in a ``contextvars.ContextVar``. The
pipeline runs every request inside its own ``contextvars.Context`` (and
re-enters it for each Deferred callback it adds), and Twisted runs coroutines
in the context they were started in, so each request — and each background
job — sees only its own attributes while many interleave on the reactor.
"""

from __future__ import annotations

import contextvars
import itertools
import os
from types import SimpleNamespace
from typing import Any, Iterator, Optional

__all__ = ["g", "new_request_id", "new_context", "current_namespace"]

_current: contextvars.ContextVar[Optional[SimpleNamespace]] = contextvars.ContextVar(
    "pyliteflux.g", default=None
)

_prefix = os.urandom(4).hex()
_counter = itertools.count(1)


def new_request_id() -> str:
    """A process-unique, cheap id: a random per-process prefix and a counter."""
    return f"{_prefix}-{next(_counter):x}"


def new_context(**values: Any) -> contextvars.Context:
    """A fresh ``Context`` whose ``g`` holds exactly ``values``."""
    ctx = contextvars.Context()
    ctx.run(_current.set, SimpleNamespace(**values))
    return ctx


def current_namespace(create: bool = False) -> Optional[SimpleNamespace]:
    """The namespace ``g`` uses right now (created in this context if asked)."""
    ns = _current.get()
    if ns is None and create:
        ns = SimpleNamespace()
        _current.set(ns)
    return ns


def enter_request() -> str:
    """Give the *current* context a fresh ``g`` with a new ``request_id``
    (call inside ``ctx.run``); returns that id."""
    ns = SimpleNamespace()
    ns.request_id = request_id = f"{_prefix}-{next(_counter):x}"
    _current.set(ns)
    return request_id


_G_METHODS = frozenset({"get", "pop", "setdefault"})


class _G:
    """Proxy to the current request's namespace; behaves like a plain object."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        # Fast path for request attributes: going through the normal lookup
        # first would raise (and catch) an AttributeError on every ``g.x``.
        if name[0] != "_" and name not in _G_METHODS:
            ns = _current.get()
            if ns is not None:
                try:
                    return ns.__dict__[name]
                except KeyError:
                    pass
            raise AttributeError(f"g has no attribute {name!r}")
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:  # names starting with "_"
        ns = _current.get()
        if ns is None:
            raise AttributeError(f"g has no attribute {name!r} (no request in progress)")
        try:
            return ns.__dict__[name]
        except KeyError:
            raise AttributeError(f"g has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        ns = _current.get()
        if ns is None:
            ns = current_namespace(create=True)
        setattr(ns, name, value)

    def __delattr__(self, name: str) -> None:
        ns = _current.get()
        if ns is None or name not in ns.__dict__:
            raise AttributeError(name)
        delattr(ns, name)

    def __contains__(self, name: object) -> bool:
        ns = _current.get()
        return ns is not None and name in ns.__dict__

    def __iter__(self) -> Iterator[str]:
        ns = _current.get()
        return iter(list(ns.__dict__) if ns is not None else [])

    def get(self, name: str, default: Any = None) -> Any:
        """``g.x`` if set, else ``default`` (like ``flask.g.get``)."""
        ns = _current.get()
        return default if ns is None else ns.__dict__.get(name, default)

    def pop(self, name: str, *default: Any) -> Any:
        ns = _current.get()
        if ns is None:
            if default:
                return default[0]
            raise KeyError(name)
        return ns.__dict__.pop(name, *default)

    def setdefault(self, name: str, default: Any = None) -> Any:
        return current_namespace(create=True).__dict__.setdefault(name, default)  # type: ignore[union-attr]

    def __dir__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self)

    def __repr__(self) -> str:
        ns = _current.get()
        return f"<g {ns.__dict__ if ns is not None else {}!r}>"


#: The request context. Import it: ``from pyliteflux import g``.
g = _G()
