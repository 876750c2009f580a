"""Adapters: one per transport, each turning its bytes into our requests for
the one pipeline, and its long-lived connections into push targets.

``ADAPTERS`` names them as data: a listener side (``"http"``, ``"tcp"``)
maps to the function that builds its Twisted factory from an
``AdapterContext``. A new transport is one more entry, not a new branch.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from .common import AdapterContext
from .http import HTTPResource, Site
from .tcp import LineFactory

__all__ = ["ADAPTERS", "AdapterContext", "http_resource", "build_factory"]


def http_resource(context: AdapterContext) -> HTTPResource:
    """The app's one ``twisted.web`` resource (made on first use)."""
    resource = context.shared.get("http_resource")
    if resource is None:
        resource = context.shared["http_resource"] = HTTPResource(context)
    return resource


def _http_factory(context: AdapterContext) -> Site:
    return Site(http_resource(context), timeout=context.config.http_idle_timeout or None)


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
