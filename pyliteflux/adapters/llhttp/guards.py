"""The llhttp engine's timers: header deadline, body rate, idle timeout.

The same rules as ``adapters/http/channel.py`` (one tick per connection
for the header deadline, a ``_RATE_WINDOW`` for the body rate), run on the
factory's reactor so tests can drive them with a ``Clock``. The idle
timer is not reset per request (see ``_check_idle``).
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.logger import Logger

from ..http.channel import _RATE_WINDOW

__all__ = ["Guards"]

_log = Logger(namespace="pyliteflux.http")
_ABORT_AFTER = 15.0  # Twisted's abortTimeout: a timed-out client that does not close


class Guards:
    """Mixed into the protocol, which sets ``factory``, ``config``,
    ``transport``, ``_in_headers``, ``current`` and ``reject``."""

    factory: Any
    config: Any
    transport: Any
    current: Any
    _in_headers: bool
    headers_done = 0  # header blocks completed on this connection
    body_bytes = 0
    _header_call: Any = None
    _rate_call: Any = None
    _idle_call: Any = None
    _abort_call: Any = None
    _rate_mark = 0
    _watch_mark: Optional[int] = None
    _watch_count = 0
    _last_read = 0.0
    _guards_on = False

    def reject(self, status: int, reason: str, message: str) -> None:
        raise NotImplementedError

    def start_guards(self) -> None:
        self._guards_on = True
        reactor = self.factory.reactor
        self._seconds = reactor.seconds
        self._call_later = reactor.callLater
        self._header_timeout = self.config.header_timeout
        self._min_rate = self.config.min_body_rate
        self._idle_timeout = self.config.http_idle_timeout
        if self._header_timeout:
            self._header_call = self._call_later(self._header_timeout / 2, self._tick_headers)
        self.idle()

    def stop_guards(self) -> None:
        self._guards_on = False
        for name in ("_header_call", "_rate_call", "_idle_call", "_abort_call"):
            call = getattr(self, name)
            if call is not None:
                if call.active():
                    call.cancel()
                setattr(self, name, None)

    # -- idle timeout (off while a request is answered) -----------------------------------
    #
    # One timer per connection, never reset per request: reads and finished
    # responses note the time, and the timer, when it fires, looks whether
    # the connection is busy or has been quiet for less than the timeout.

    def touch(self) -> None:
        self._last_read = self._seconds()

    def idle(self) -> None:
        """Nothing in flight any more: the idle time counts from now."""
        if self._idle_timeout and self._guards_on:
            self._last_read = self._seconds()
            if self._idle_call is None:
                self._idle_call = self._call_later(self._idle_timeout, self._check_idle)

    def busy(self) -> None:
        """A request is being answered (the timer skips busy connections)."""

    def _check_idle(self) -> None:
        self._idle_call = None
        quiet = self._seconds() - self._last_read
        if self.current is not None or quiet < self._idle_timeout:
            wait = self._idle_timeout if self.current is not None else self._idle_timeout - quiet
            self._idle_call = self._call_later(wait, self._check_idle)
            return
        _log.info("Timing out client: {peer}", peer=str(self.transport.getPeer()))
        self.transport.loseConnection()
        self._abort_call = self._call_later(_ABORT_AFTER, self._abort)

    def _abort(self) -> None:
        self._abort_call = None
        if self.transport is not None and getattr(self.transport, "connected", False):
            self.transport.abortConnection()

    # -- header deadline (as GuardedChannel) -------------------------------------------------

    def _tick_headers(self) -> None:
        self._header_call = None
        if self._in_headers and self.current is None:
            if self._watch_mark == self.headers_done:
                self._watch_count += 1
                if self._watch_count >= 3:
                    _log.info("closing {peer}: request headers not complete within {timeout} s",
                              peer=str(self.transport.getPeer()), timeout=self._header_timeout)
                    self.reject(408, "Request Timeout", "Request Timeout")
                    return
            else:
                self._watch_mark, self._watch_count = self.headers_done, 1
        else:
            self._watch_mark = None
        self._header_call = self._call_later(self._header_timeout / 2, self._tick_headers)

    # -- body rate -----------------------------------------------------------------------
    #
    # As the idle timer: one timer per connection, left running between
    # bodies; a body's first window starts when its headers end.

    _in_body = False
    _window_start = 0.0

    def body_started(self) -> None:
        if self._min_rate and not getattr(self, "rejected", False):
            self.body_bytes = 0
            self._rate_mark = 0
            self._in_body = True
            self._window_start = self._seconds()
            if self._rate_call is None:
                self._rate_call = self._call_later(_RATE_WINDOW, self._check_body_rate)

    def body_done(self) -> None:
        self._in_body = False

    def _check_body_rate(self) -> None:
        self._rate_call = None
        if not self._in_body:
            return
        elapsed = self._seconds() - self._window_start
        if elapsed < _RATE_WINDOW:  # a body begun after the timer was set
            self._rate_call = self._call_later(_RATE_WINDOW - elapsed, self._check_body_rate)
            return
        received = self.body_bytes - self._rate_mark
        if received < self._min_rate * _RATE_WINDOW:
            _log.info("closing {peer}: request body slower than {rate} bytes/s",
                      peer=str(self.transport.getPeer()), rate=self._min_rate)
            self.reject(408, "Request Timeout", "Request Timeout")
            return
        self._rate_mark = self.body_bytes
        self._window_start = self._seconds()
        self._rate_call = self._call_later(_RATE_WINDOW, self._check_body_rate)
