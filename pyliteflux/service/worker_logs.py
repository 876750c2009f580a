"""Where workers log (SPEC §15): straight to the supervisor's stdout, or
through the supervisor when its stdout goes nowhere.

A supervisor in the foreground (``python -m pyliteflux``, ``twistd -n``,
systemd) lets its workers inherit its stdout and stderr: every process
writes its own lines, and nothing passes through the supervisor. A
daemonized ``twistd`` has pointed stdout and stderr at ``/dev/null`` and
logs to its log file instead; its workers would log into the void. Then
(``relay_needed()``) each worker gets pipes for stdout and stderr and
writes one JSON object per event (``PYLITEFLUX_WORKER_LOG=json``), and the
supervisor's ``LogRelay`` re-emits every event, and every other line a
worker writes (a traceback, a ``print``), into its own log.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, cast

from twisted.logger import Logger, LogLevel

__all__ = ["relay_needed", "LogRelay", "start_worker_logging", "RELAY_ENV"]

#: set in a worker's environment when its supervisor relays its log
RELAY_ENV = "PYLITEFLUX_WORKER_LOG"

#: a line longer than this is passed on in pieces (a worker cannot make the
#: supervisor buffer without bound)
MAX_LINE = 64 * 1024

_log = Logger(namespace="pyliteflux.worker")

#: keys of a worker's JSON event that are not its fields again
_NOT_FIELDS = ("time", "level", "namespace", "message", "worker", "format", "text",
               "error", "traceback")


def relay_needed(fd: int = 1) -> bool:
    """Whether ``fd`` (stdout) is ``/dev/null``: a daemonized twistd's."""
    try:
        mine, null = os.fstat(fd), os.stat(os.devnull)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (null.st_dev, null.st_ino)


class LogRelay:
    """The output of one worker (``childDataReceived``), into the
    supervisor's log: JSON events as events, other lines as lines."""

    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self._partial: Dict[int, bytes] = {}

    def received(self, fd: int, data: bytes) -> None:
        data = self._partial.pop(fd, b"") + data
        lines = data.split(b"\n")
        rest = lines.pop()
        if len(rest) > MAX_LINE:
            lines.append(rest)
        elif rest:
            self._partial[fd] = rest
        for line in lines:
            self._emit(fd, line.decode("utf-8", "replace").rstrip("\r"))

    def flush(self) -> None:
        for fd, rest in list(self._partial.items()):
            self._emit(fd, rest.decode("utf-8", "replace"))
        self._partial.clear()

    def _emit(self, fd: int, line: str) -> None:
        if not line:
            return
        event: Any = None
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                event = None
        if not isinstance(event, dict):  # a print, a traceback line
            level = LogLevel.warn if fd == 2 else LogLevel.info
            _log.emit(level, "worker {worker_id}: {line}", worker_id=self.worker_id, line=line)
            return
        try:
            level = LogLevel.levelWithName(str(event.get("level", "info")))
        except Exception:
            level = LogLevel.info
        fields = {k: v for k, v in event.items()
                  if k not in _NOT_FIELDS and not k.startswith("log_")}
        fields["worker_id"] = self.worker_id
        Logger(namespace=str(event.get("namespace") or "pyliteflux.worker")).emit(
            level, "[worker {worker_id}] {text}", text=str(event.get("message", "")),
            **fields)


def start_worker_logging(worker_id: int, level: LogLevel = LogLevel.info,
                         log_format: str = "text") -> None:
    """Log to stdout (the supervisor's, inherited, or a pipe to it), every
    line naming the worker (``[worker 1 pyliteflux.access#info]``; as JSON a
    ``"worker": 1`` field) and every event carrying a ``worker_id`` field."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    if os.environ.get(RELAY_ENV) == "json":
        log_format = "json"  # for the supervisor's LogRelay
    if log_format == "json":
        from ..observability.jsonlog import json_observer

        globalLogBeginner.beginLoggingTo([json_observer(sys.stdout, level,
                                                        extra={"worker": worker_id})],
                                         redirectStandardIO=False)
        return
    text = textFileLogObserver(sys.stdout)
    prefix = f"worker {worker_id} "

    def observer(event: Dict[str, Any]) -> None:
        event["worker_id"] = worker_id
        system = event.get("log_system")
        if system is None:
            lvl = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{lvl.name if lvl else '-'}"
        event["log_system"] = prefix + str(system)
        text(event)

    filtered: Any = FilteringLogObserver(
        cast(Any, observer), [cast(Any, LogLevelFilterPredicate(defaultLogLevel=level))])
    globalLogBeginner.beginLoggingTo([filtered], redirectStandardIO=False)
