"""``log_format = "json"``: one JSON object per log event, one per line.

A ``twisted.logger`` observer, so it sees everything the other observers
see: our own events (access log, lifecycle, failures), ``Logger.info``
from user code, and Twisted's legacy ``log.msg`` events. Each line has

- ``time`` (ISO 8601, UTC), ``level``, ``namespace``, ``message`` (the
  event's format string filled in, as the text log shows it);
- the event's own fields (``{name}`` placeholders and any keyword given
  to the logger), so an access event carries ``method``, ``path``,
  ``status``, ``duration`` (seconds) and ``client`` as fields of their own;
- with a failure: ``error`` and ``traceback``;
- the observer's ``extra`` fields on every line (a worker's ``worker``).

Values that JSON cannot hold are written as their ``str()``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Any, Dict, Mapping, Optional, cast

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
)
from zope.interface import implementer

__all__ = ["JSONLogObserver", "json_observer", "logger"]

_PLAIN = (str, int, float, bool, type(None))
#: keys of Twisted's legacy events that the line already says another way
_LEGACY = frozenset({"message", "format", "isError", "time", "why", "failure", "printed"})


def _jsonable(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple, dict)):
        try:
            json.dumps(value)
            return value
        except (TypeError, ValueError):
            pass
    return str(value)


@implementer(ILogObserver)
class JSONLogObserver:
    """Writes each event to ``out`` as one line of JSON (flushed: a pipe to a
    log shipper sees it at once)."""

    def __init__(self, out: IO[str], extra: Optional[Mapping[str, Any]] = None) -> None:
        self.out = out
        self.extra = dict(extra or {})

    def line(self, event: Mapping[str, Any]) -> str:
        """The JSON line (without its newline) for ``event``."""
        record: Dict[str, Any] = {}
        stamp = event.get("log_time")
        if stamp is not None:
            when = datetime.fromtimestamp(stamp, timezone.utc)
            record["time"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        level = event.get("log_level")
        record["level"] = level.name if level is not None else "info"
        record["namespace"] = event.get("log_namespace", "")
        record["message"] = formatEvent(dict(event))
        failure = event.get("log_failure")
        if failure is not None:
            record["error"] = failure.getErrorMessage()
            record["traceback"] = failure.getTraceback()
        record.update(self.extra)
        for key, value in event.items():  # the event's fields, after ours
            if key.startswith("log_") or key in _LEGACY or key in record:
                continue
            record[key] = _jsonable(value)
        return json.dumps(record, ensure_ascii=False)

    def __call__(self, event: Mapping[str, Any]) -> None:
        try:
            text = self.line(event)
        except Exception as exc:  # an observer must never raise
            text = json.dumps({"level": "error", "namespace": "pyliteflux.log",
                               "message": f"unloggable event: {exc!r}"})
        self.out.write(text + "\n")
        self.out.flush()


def json_observer(out: Optional[IO[str]] = None, level: LogLevel = LogLevel.info,
                  extra: Optional[Mapping[str, Any]] = None) -> Any:
    """A JSON observer of events at ``level`` and above, to ``out`` (stdout)."""
    return FilteringLogObserver(  # (zope interfaces type poorly: casts)
        cast(Any, JSONLogObserver(out if out is not None else sys.stdout, extra)),
        [cast(Any, LogLevelFilterPredicate(defaultLogLevel=level))],
    )


def logger() -> Any:
    """For ``twistd --logger pyliteflux.observability.jsonlog.logger``: JSON to stdout."""
    return json_observer()
