"""The command side shared by every transport of the §9 line format (TCP
lines, WebSocket text messages): one request per line through the pipeline,
replies in request order even when handlers finish out of order.

A protocol mixes ``CommandSession`` in and provides ``_send_reply(line,
request)``, ``_reading_resumed()`` (go on reading: resume the transport,
handle what was held back), the attributes ``_dispatch``, ``_jobs``,
``client_address``, ``client_id``, ``closing``, ``_max_pending``, a
``_pending`` list and ``_read_pauses``/``_output_paused``/``_unsent``;
``_drained`` is called when no reply is outstanding any more.

The session is also its transport's push producer: while the client does
not read (the transport's buffer is full) reading from it pauses, so one
client cannot make the server buffer without bound (§9), and reading
resumes when every reason to pause (``"output"``, too many pending
replies) has gone.
"""

from __future__ import annotations

from typing import Any, List, Optional, Set

from twisted.logger import Logger

from ..core.errors import INTERNAL_ERROR
from ..core.pipeline import is_deferred
from ..core.requests import TCPRequest
from .common import cancel_if_pending, when_done
from .lines import LineError, encode_reply, parse_line

__all__ = ["CommandSession"]

_log = Logger(namespace="pyliteflux.commands")


class CommandSession:
    """Parsing, dispatch and in-order replies of command lines."""

    _pending: List[List[Any]]  # [reply bytes or None, request, pending Deferred]
    _max_pending: int
    closing: bool
    data_type: str
    _dispatch: Any
    _jobs: Any
    client_address: Any
    client_id: str
    transport: Any
    factory: Any
    hub: Any
    registered: bool
    _read_pauses: Set[str]
    _output_paused: bool
    _unsent: int

    def _start_session(self, context: Any) -> None:
        """The session's state, from the adapter's ``AdapterContext``."""
        self.context = context
        self.hub = context.hub
        self._dispatch = context.dispatch
        self._jobs = context.jobs
        config = self._config = context.config
        self._max_output = config.max_output_buffer
        self._max_pending = config.max_pending_per_connection
        self._pending = []
        self._read_pauses = set()
        self._output_paused = False
        self._unsent = 0
        self.closing = False
        self.registered = False
        self.data_type = "json"  # format of the latest request: pushes use it

    def _end_session(self) -> None:
        """The connection has closed: leave the factory and the hub, and
        cancel the replies still being worked on."""
        self.closing = True
        self.factory.forget(self)
        if self.registered:
            self.hub.unregister(self)
            self.registered = False
        pending, self._pending = self._pending, []
        for slot in pending:
            cancel_if_pending(slot[2])

    @property
    def pending_count(self) -> int:
        """Commands received on this connection whose replies are not sent yet."""
        return len(self._pending)

    # -- IPushProducer: the transport tells us when our output backs up ------------

    def pauseProducing(self) -> None:
        # Twisted may call this again on every write while the buffer is
        # over its limit: only the first call starts the count.
        if not self._output_paused:
            self._output_paused = True
            self._unsent = 0
            self._pause_reading("output")

    def resumeProducing(self) -> None:
        self._output_paused = False
        self._unsent = 0
        self._resume_reading("output")

    def stopProducing(self) -> None:
        self.closing = True

    def _pause_reading(self, reason: str) -> None:
        if not self._read_pauses and self.transport is not None:
            self.transport.pauseProducing()
        self._read_pauses.add(reason)

    def _resume_reading(self, reason: str) -> None:
        if reason not in self._read_pauses:
            return
        self._read_pauses.discard(reason)
        if not self._read_pauses and not self.closing:
            self._reading_resumed()

    def handle_command(self, line: bytes) -> None:
        """One request line (framing, BOM and blank lines already dealt with)."""
        try:
            command, data, data_type, request_id, element, headers = parse_line(line)
        except LineError as err:
            self._queue_reply(encode_reply(err.body(), err.data_type, err.request_id), None)
            return
        self.data_type = data_type
        request = TCPRequest(
            command, data, data_type, self.client_address, self._jobs,
            request_id=request_id, line=line, element=element,
            headers=headers, connection=self, client_id=self.client_id,
        )
        value = self._dispatch(request)
        if is_deferred(value):  # PERF: a plain value allocates no slot
            slot: List[Any] = [None, request, None]
            when_done(value, self._async_done, self._async_failed, slot)
            slot[2] = value
            self._pending.append(slot)
            if len(self._pending) >= self._max_pending:
                self._pause_reading("pending")
        elif self._pending:
            self._pending.append([self._encode(value, request), request, None])
        else:
            self._send_reply(self._encode(value, request), request)

    def _encode(self, value: Any, request: TCPRequest) -> bytes:
        try:
            return encode_reply(value, request.data_type, request.id)
        except Exception:
            _log.failure("cannot encode the reply to {request!r}", request=request)
            return encode_reply(INTERNAL_ERROR, request.data_type, request.id)

    def _queue_reply(self, line: bytes, request: Optional[TCPRequest]) -> None:
        if self._pending:
            self._pending.append([line, request, None])
        else:
            self._send_reply(line, request)

    def _async_done(self, value: Any, slot: List[Any]) -> None:
        slot[0] = self._encode(value, slot[1])
        slot[2] = None
        self._flush()

    def _async_failed(self, failure: Any, slot: List[Any]) -> None:
        if self.closing:
            return
        slot[0] = encode_reply(INTERNAL_ERROR, slot[1].data_type, slot[1].id)
        slot[2] = None
        self._flush()

    def _flush(self) -> None:
        pending = self._pending
        while pending and pending[0][0] is not None:
            line, request, _ = pending.pop(0)
            self._send_reply(line, request)
        if len(pending) < self._max_pending:
            self._resume_reading("pending")
        if not pending:
            self._drained()

    # -- what the protocol provides ------------------------------------------------------

    def _send_reply(self, line: bytes, request: Optional[TCPRequest]) -> None:
        raise NotImplementedError

    def _reading_resumed(self) -> None:
        raise NotImplementedError

    def _drained(self) -> None:
        """Every reply is out (a hook: TCP finishes a half-close here)."""
