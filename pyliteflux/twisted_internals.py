"""Every use of a private (or undocumented) Twisted attribute, in one place.

Each assumption is named in ``ASSUMPTIONS`` and checked by ``check()``:
``tests/test_twisted_internals.py`` fails loudly when an upgrade of
Twisted breaks one, and importing this module logs a warning naming it.
Where a public API can do the same job, the code falls back to it.

- ``Headers._rawHeaders``: the request fast path stores the few response
  headers we make ourselves straight into it (fallback: ``setRawHeaders``).
- ``tcp.Connection``'s write buffer (``_tempDataLen``, ``offset``,
  ``dataBuffer``, ``writeSomeData``): the line protocol writes to the
  socket at once when nothing is queued (fallback: ``transport.write``).
  Measured: fan-out to 10,000 clients 263 -> 132 ms, TCP echo at 100
  connections 0.86 -> 0.98 of a bare LineReceiver. The same idea made HTTP
  slower under load (Twisted batches HTTP writes per reactor turn), so
  HTTP keeps Twisted's writes.
- ``HTTPChannel``'s parser state (``line_mode``, ``_handlingRequest``,
  ``_buffer``, ``_receivedHeaderSize``, ``_receivedHeaderCount``) and its
  hook ``_respondToBadRequestAndDisconnect``, and ``Request._handleStar``:
  the header deadline and our JSON error answers (no public equivalent:
  without them the deadline is off and Twisted's bare answers come back).
- ``HTTPChannel.requests`` (documented, but not an API): what shutdown
  asks to tell busy HTTP connections from idle ones.
- ``tcp.Port._fromListeningDescriptor`` / ``unix.Port._fromListeningDescriptor``
  (what ``adoptStreamPort`` calls) and ``Port.numberAccepts``: a worker
  adopts its shared listening socket as a port class of ours that accepts
  a few connections per wakeup, so that the workers share the load
  (fallback: ``adoptStreamPort``, where one worker may take most of a burst).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, Dict, List

from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.server import Request as WebRequest

__all__ = ["ASSUMPTIONS", "check", "FAST_HEADERS", "raw_headers", "can_write_through",
           "send_now", "in_request_headers", "headers_over_limits", "channel_requests",
           "adopt_listening_port"]

_log = Logger(namespace="pyliteflux.twisted_internals")

_WRITE_BUFFER = ("_tempDataLen", "offset", "dataBuffer", "writeSomeData", "connected",
                 "disconnecting")
_CHANNEL_STATE = ("line_mode", "_handlingRequest", "_buffer", "_receivedHeaderSize",
                  "_receivedHeaderCount", "totalHeadersSize", "maxHeaders", "requests")


# -- Headers._rawHeaders ------------------------------------------------------------------

def _headers_are_a_dict() -> bool:
    """Whether ``Headers`` keeps canonical names in a ``_rawHeaders`` dict,
    as Twisted 22 to 26 do."""
    h = Headers()
    try:
        for name in (b"Server", b"Date", b"Content-Type", b"Content-Length"):
            h.setRawHeaders(name.lower(), [b"x"])
        return h._rawHeaders == dict.fromkeys(  # type: ignore[attr-defined]
            (b"Server", b"Date", b"Content-Type", b"Content-Length"), [b"x"])
    except Exception:
        return False


FAST_HEADERS = _headers_are_a_dict()


#: ``raw_headers(headers)``: the dict behind ``headers`` (only when ``FAST_HEADERS``);
#: an ``attrgetter``, so the request fast path pays no Python call for it (# PERF)
raw_headers: Callable[[Headers], Dict[bytes, List[bytes]]] = attrgetter("_rawHeaders")


# -- tcp.Connection's write buffer ----------------------------------------------------------

def can_write_through(transport: Any) -> bool:
    """Whether ``transport`` is a plain TCP connection whose buffer we can read."""
    from twisted.internet import tcp

    return isinstance(transport, tcp.Connection) and all(
        hasattr(transport, a) for a in _WRITE_BUFFER)


def send_now(transport: Any, data: bytes) -> None:
    """Send ``data`` now if nothing is queued on ``transport``; queue the rest
    (ordering, backpressure and producers behave as with ``write``)."""
    if (not transport._tempDataLen and transport.offset >= len(transport.dataBuffer)
            and transport.connected and not transport.disconnecting):
        sent = transport.writeSomeData(data)
        if sent == len(data):
            return
        if type(sent) is int and sent > 0:
            data = data[sent:]
    transport.write(data)


# -- HTTPChannel's parser state -----------------------------------------------------------

def in_request_headers(channel: Any) -> bool:
    """Whether the channel is part-way through a request's header block."""
    return bool(channel.line_mode and not channel._handlingRequest
                and (channel._buffer or channel._receivedHeaderSize))


def headers_over_limits(channel: Any) -> bool:
    """Whether the headers received were too many or too large in total."""
    return bool(channel._receivedHeaderSize > channel.totalHeadersSize
                or channel._receivedHeaderCount > channel.maxHeaders)


def header_bytes_so_far(channel: Any) -> int:
    """Bytes of the current request's header block received so far."""
    return int(channel._receivedHeaderSize)


def channel_requests(channel: Any) -> List[Any]:
    """The requests a channel has received and not finished (in order)."""
    return list(channel.requests)


# -- the checks ----------------------------------------------------------------------

def _channel_state_problems() -> List[str]:
    channel = HTTPChannel()
    return [f"HTTPChannel().{name} is gone" for name in _CHANNEL_STATE
            if not hasattr(channel, name)]


def _write_buffer_problems() -> List[str]:
    from twisted.internet import tcp

    return [f"tcp.Connection.{name} is gone" for name in _WRITE_BUFFER
            if name not in ("connected", "disconnecting", "offset", "dataBuffer",
                            "_tempDataLen") and not hasattr(tcp.Connection, name)]


# -- adopting a listening socket as a port class of ours -----------------------------------

def _adoption_problems() -> List[str]:
    from twisted.internet import tcp, unix

    problems = [f"{cls.__module__}.Port._fromListeningDescriptor is gone"
                for cls in (tcp, unix) if not hasattr(cls.Port, "_fromListeningDescriptor")]
    import inspect

    if "numberAccepts" not in inspect.getsource(tcp.Port.doRead):
        problems.append("tcp.Port.doRead no longer batches accepts by numberAccepts")
    return problems


def adopt_listening_port(port_class: Any, reactor: Any, fd: int, family: int,
                         factory: Any) -> Any:
    """``reactor.adoptStreamPort``, with ``port_class`` (a subclass of
    ``tcp.Port`` or ``unix.Port``) for the port; listening."""
    import socket

    if family == socket.AF_UNIX:
        port = port_class._fromListeningDescriptor(reactor, fd, factory)
    else:
        port = port_class._fromListeningDescriptor(reactor, fd, family, factory)
    port.startListening()
    return port


#: name -> function returning the problems found (empty: the assumption holds)
ASSUMPTIONS = {
    "Headers._rawHeaders": lambda: [] if FAST_HEADERS else
    ["Headers no longer keeps a _rawHeaders dict of canonical names"],
    "tcp.Connection write buffer": _write_buffer_problems,
    "HTTPChannel parser state": _channel_state_problems,
    "HTTPChannel._respondToBadRequestAndDisconnect": lambda: [] if hasattr(
        HTTPChannel, "_respondToBadRequestAndDisconnect") else
    ["HTTPChannel._respondToBadRequestAndDisconnect is gone: malformed requests get "
     "Twisted's bare 400"],
    "Port._fromListeningDescriptor": _adoption_problems,
    "Request._handleStar": lambda: [] if hasattr(WebRequest, "_handleStar") else
    ["Request._handleStar is gone: 'GET *' gets Twisted's answer"],
}


def check() -> List[str]:
    """Every broken assumption, described (empty when all hold)."""
    problems: List[str] = []
    for name, probe in ASSUMPTIONS.items():
        try:
            problems.extend(probe())
        except Exception as exc:  # pragma: no cover - a very different Twisted
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    return problems


for _problem in check():  # pragma: no cover - only on a Twisted we were not tested on
    _log.warn("Twisted changed: {problem}", problem=_problem)
