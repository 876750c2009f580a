"""Run HTTP test cases on both HTTP engines (SPEC §17), without copying them.

``@per_engine`` on a ``TestCase`` leaves the class as it is (the default,
``"twisted"``, engine) and adds ``<Name>_llhttp`` next to it in its module:
a subclass whose tests run with ``http_engine = "llhttp"`` as the default
of every ``Config`` made during the test (the default is patched for the
test's duration, so servers, ``TestClient`` and ``serve()`` all follow).
``self.http_engine`` names the engine a test runs on.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any, Type, TypeVar

from pyliteflux import config as config_module

__all__ = ["ENGINES", "per_engine", "default_engine"]

ENGINES = ("twisted", "llhttp")
T = TypeVar("T")


def default_engine(case: Any, engine: str) -> None:
    """Make ``engine`` the ``http_engine`` default for the rest of ``case``."""
    keys = tuple(replace(k, default=engine) if k.name == "http_engine" else k
                 for k in config_module.CONFIG_KEYS)
    case.patch(config_module, "CONFIG_KEYS", keys)


def per_engine(cls: Type[T]) -> Type[T]:
    module = sys.modules[cls.__module__]
    cls.http_engine = ENGINES[0]  # type: ignore[attr-defined]
    for engine in ENGINES[1:]:
        name = f"{cls.__name__}_{engine}"

        def setUp(self: Any, _engine: str = engine, _base: Any = cls) -> Any:
            default_engine(self, _engine)
            return _base.setUp(self)

        sub = type(name, (cls,), {"http_engine": engine, "setUp": setUp,
                                  "__module__": cls.__module__, "__qualname__": name})
        setattr(module, name, sub)
    return cls
