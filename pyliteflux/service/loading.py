"""Importing a user's app: ``module:attribute`` -> ``Server``, without blocking.

A module that ends in ``server.run()`` (as the seed's examples do) is
imported inside ``importing_app()``, which makes ``run()`` return at once,
so the same module can be served by twistd or driven by tests.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["importing_app", "load_app", "AppLoadError", "NotAServer", "AppModuleNotFound",
           "AppAttributeMissing", "run_suppressed"]

_run_suppressed = 0


def run_suppressed() -> bool:
    """Whether ``Server.run()`` should return at once (an app is being imported)."""
    return _run_suppressed > 0


@contextmanager
def importing_app() -> Iterator[None]:
    """While active, ``Server.run()`` returns at once instead of blocking."""
    global _run_suppressed
    _run_suppressed += 1
    try:
        yield
    finally:
        _run_suppressed -= 1


class AppLoadError(ValueError):
    """The app named could not be loaded; the message says why, for a person."""


class NotAServer(AppLoadError, TypeError):
    """The name was found, but it is not a ``Server`` (nor makes one)."""


class AppModuleNotFound(AppLoadError, ModuleNotFoundError):
    """The app's module does not exist (also a ``ModuleNotFoundError``)."""


class AppAttributeMissing(AppLoadError, AttributeError):
    """The app's module has no such attribute (also an ``AttributeError``)."""


def _short_traceback() -> str:
    """The last frames of the current exception: enough to fix the app."""
    lines = traceback.format_exc(limit=-3).rstrip().splitlines()
    return "\n".join("    " + line for line in lines)


def load_app(spec: str, expected: type, *, default_attr: str = "", fresh: bool = False) -> Any:
    """Import ``"module:attribute"`` and return the ``Server`` it names.

    The attribute may be an ``expected`` (the ``Server`` class: this module
    does not import the app) or a callable returning one (a dotted
    path is followed). Without ``":attribute"``, ``default_attr`` is used
    (an error when empty). ``fresh`` re-imports the module with a fresh
    default router, so two apps loaded in one process never share routes.
    Raises ``AppLoadError`` with a readable message.
    """
    from ..core.routing import Route

    module_name, sep, attr = spec.partition(":")
    attr = attr or default_attr
    if not module_name or not attr:
        raise AppLoadError(f"--app must look like module:attribute, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`: apps in the current directory import
    if fresh:
        sys.modules.pop(module_name, None)
    try:
        with importing_app():
            if fresh:
                with Route.isolated():
                    module = importlib.import_module(module_name)
            else:
                module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppModuleNotFound(
                f"--app {spec}: no module named {exc.name!r} "
                f"(searched from {cwd}; is it on PYTHONPATH?)") from None
        raise AppLoadError(f"--app {spec}: importing {module_name} failed:\n"
                           f"{_short_traceback()}") from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppLoadError(f"--app {spec}: importing {module_name} failed:\n"
                           f"{_short_traceback()}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppAttributeMissing(f"--app {spec}: module {module_name!r} has no "
                               f"attribute {attr!r}") from None
    if not isinstance(obj, expected) and callable(obj):
        try:
            with importing_app():
                obj = obj()
        except Exception:
            raise AppLoadError(f"--app {spec}: calling {attr}() failed:\n"
                               f"{_short_traceback()}") from None
    if not isinstance(obj, expected):
        raise NotAServer(f"--app {spec}: expected a pyliteflux Server (or a factory "
                           f"returning one), got {type(obj).__name__}")
    return obj
