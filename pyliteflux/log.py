"""``Logger``: the seed's logging API on top of ``twisted.logger``.

``Logger.info("...")`` works as in the original (a class-level call), and
because it emits through ``twisted.logger``, ``twistd``'s log file and any
observer see it. ``Logger("name")`` gives a logger with its own namespace.
"""

from __future__ import annotations

import sys
from typing import Any, Optional, cast

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.logger import Logger as _TwistedLogger

__all__ = ["Logger", "start_console_logging", "console_observer"]


class _LevelMethod:
    """Works as ``Logger.info(msg)`` and as ``Logger("ns").info(msg)``."""

    def __init__(self, level: LogLevel) -> None:
        self.level = level

    def __get__(self, obj: Optional["Logger"], cls: "type[Logger]") -> Any:
        target = obj._log if obj is not None else cls._default
        level = self.level

        def emit(message: Any, **fields: Any) -> None:
            target.emit(level, "{log_text}", log_text=str(message), **fields)

        emit.__doc__ = f"Log ``message`` at level {level.name}."
        return emit


class Logger:
    """Application logging: ``Logger.debug/info/warning/error(message)``."""

    _default = _TwistedLogger(namespace="pyliteflux.app")

    def __init__(self, namespace: str = "pyliteflux.app") -> None:
        self._log = _TwistedLogger(namespace=namespace)

    debug = _LevelMethod(LogLevel.debug)
    info = _LevelMethod(LogLevel.info)
    warning = _LevelMethod(LogLevel.warn)
    warn = warning
    error = _LevelMethod(LogLevel.error)
    critical = _LevelMethod(LogLevel.critical)


_console_started = False


def console_observer(log_format: str = "text", level: LogLevel = LogLevel.info) -> Any:
    """An observer of events at ``level`` and above for stdout: Twisted's text
    lines, or one JSON object per line (``log_format = "json"``)."""
    if log_format == "json":
        from .observability.jsonlog import json_observer

        return json_observer(sys.stdout, level)
    return FilteringLogObserver(
        cast(Any, textFileLogObserver(sys.stdout)),
        [cast(Any, LogLevelFilterPredicate(defaultLogLevel=level))],
    )


def start_console_logging(level: LogLevel = LogLevel.info, log_format: str = "text") -> None:
    """Send log events at ``level`` and above to stdout (for ``server.run()``
    and ``python -m pyliteflux``), as text or JSON (``log_format``).

    ``twistd`` configures logging itself, so this is only for the plain
    ``python app.py`` way of running. It is done at most once per process.
    """
    global _console_started
    if _console_started:
        return
    _console_started = True
    globalLogBeginner.beginLoggingTo([console_observer(log_format, level)],
                                     redirectStandardIO=False)
