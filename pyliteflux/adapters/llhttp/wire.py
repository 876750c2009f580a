"""Bytes on the wire for the llhttp engine: status lines, response heads
and the canned answers, computed once where they can be.

The head follows what ``twisted.web`` sends for the same response: its
``Server`` and ``Date`` (a handler's own replace them), ``Content-Type:
text/html`` when a body has none (Twisted's default), CR/LF in a value
folded to a space (no header injection), the client's HTTP version in the
status line.
"""

from __future__ import annotations

from time import time
from typing import Dict, Iterable, List, Tuple

from twisted.web.http import RESPONSES, datetimeToString

__all__ = ["SERVER", "head_bytes", "status_line", "http_date", "json_prefix", "CONTINUE"]

SERVER = b"pyliteflux"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_BODY_CODES = (204, 304)
_status_lines: Dict[Tuple[bytes, int], bytes] = {}
# [second, Date value, "HTTP/1.1 200 OK ... Content-Length: " prefix]
_now: List[object] = [-1, b"", b""]


def status_line(version: bytes, code: int) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` (cached per version and code)."""
    line = _status_lines.get((version, code))
    if line is None:
        reason = RESPONSES.get(code, b"Unknown Status")
        line = b"%s %d %s\r\n" % (version, code, reason)
        if len(_status_lines) < 1024:
            _status_lines[(version, code)] = line
    return line


def _tick() -> None:
    now = int(time())
    if now != _now[0]:
        date = datetimeToString(now)
        _now[1] = date
        _now[2] = (b"HTTP/1.1 200 OK\r\nServer: " + SERVER + b"\r\nDate: " + date
                   + b"\r\nContent-Type: application/json\r\nContent-Length: ")
        _now[0] = now


def http_date() -> bytes:
    """The ``Date`` header value for now, formatted once per second."""
    _tick()
    return _now[1]  # type: ignore[return-value]


def json_prefix() -> bytes:
    """The head of an HTTP/1.1 200 JSON response up to the length's digits."""
    _tick()
    return _now[2]  # type: ignore[return-value]


def _clean(value: bytes) -> bytes:
    if b"\r" in value or b"\n" in value:
        return b" ".join(value.splitlines())
    return value


def head_bytes(version: bytes, code: int, pairs: Iterable[Tuple[bytes, bytes]]) -> bytes:
    """The status line and headers of a response, ending in the blank line.

    ``pairs`` are the response's own headers (framing included); the
    defaults Twisted adds are added here unless ``pairs`` has them.
    """
    has_server = has_date = has_type = False
    zero_length = False
    lines = []
    for name, value in pairs:
        lower = name.lower()
        if lower == b"server":
            has_server = True
        elif lower == b"date":
            has_date = True
        elif lower == b"content-type":
            has_type = True
        elif lower == b"content-length" and value == b"0":
            zero_length = True
        lines.append(b"%s: %s\r\n" % (_clean(name), _clean(value)))
    out = [status_line(version, code)]
    if not has_server:
        out.append(b"Server: " + SERVER + b"\r\n")
    if not has_date:
        out.append(b"Date: " + http_date() + b"\r\n")
    if not has_type and code not in _NO_BODY_CODES and not zero_length:
        out.append(b"Content-Type: text/html\r\n")
    out.extend(lines)
    out.append(b"\r\n")
    return b"".join(out)
