"""Adapters: one per transport, each turning its bytes into our requests for
the one pipeline, and its long-lived connections into push targets.

``ADAPTERS`` names them as data: a listener side (``"http"``, ``"tcp"``)
maps to the function that builds its Twisted factory from an
``AdapterContext``. A new transport is one more entry, not a new branch.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from .common import AdapterContext
from .http import HTTPResource, Site
from .tcp import LineFactory

__all__ = ["ADAPTERS", "AdapterContext", "http_resource", "http_factory", "build_factory",
           "HTTP_ENGINES"]


def http_resource(context: AdapterContext) -> HTTPResource:
    """The app's one ``twisted.web`` resource (made on first use)."""
    resource = context.shared.get("http_resource")
    if resource is None:
        resource = context.shared["http_resource"] = HTTPResource(context)
    return resource


def _twisted_factory(context: AdapterContext, reactor: Optional[Any] = None) -> Site:
    kwargs = {"reactor": reactor} if reactor is not None else {}
    return Site(http_resource(context), timeout=context.config.http_idle_timeout or None,
                **kwargs)


def _llhttp_factory(context: AdapterContext, reactor: Optional[Any] = None) -> Any:
    from .llhttp import LLHTTPFactory  # httptools: only this engine's
    from .llhttp.upgrade import has_upgrade, register_upgrade
    from .websocket.upgrade import upgrade_request

    if not has_upgrade("websocket"):  # (unless an app registered its own)
        # WebSocket handshakes at websocket_path go to the WebSocket adapter
        register_upgrade("websocket", upgrade_request, path_key="websocket_path")

    return LLHTTPFactory(context, reactor=reactor)


#: config ``http_engine`` -> builder of the HTTP factory (SPEC §17)
HTTP_ENGINES: Dict[str, Callable[..., Any]] = {
    "twisted": _twisted_factory,
    "llhttp": _llhttp_factory,
}


def http_factory(context: AdapterContext, reactor: Optional[Any] = None,
                 engine: Optional[str] = None) -> Any:
    """The HTTP factory of the configured engine (``engine`` overrides it);
    its connection timers on ``reactor`` when given (a ``Clock`` in tests)."""
    return HTTP_ENGINES[engine or context.config.http_engine](context, reactor)


def _http_factory(context: AdapterContext) -> Any:
    return http_factory(context)


def _tcp_factory(context: AdapterContext) -> LineFactory:
    return LineFactory(context)


#: listener side -> builder of its factory
ADAPTERS: Dict[str, Callable[[AdapterContext], Any]] = {
    "http": _http_factory,
    "tcp": _tcp_factory,
}


def build_factory(side: str, context: AdapterContext) -> Any:
    """The Twisted factory serving listener ``side``."""
    try:
        builder = ADAPTERS[side]
    except KeyError:
        raise ValueError(f"no adapter for {side!r}; known: {sorted(ADAPTERS)}") from None
    return builder(context)
