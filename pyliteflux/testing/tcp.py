"""In-memory TCP clients of the line protocol, for tests."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Union

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from ..core.codec import DecodeError, loads_json, parse_xml, xml_to_data

__all__ = ["TCPTestConnection", "json_bytes"]


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


class _NotifyingTransport(StringTransport):
    """A StringTransport that tells the connection about writes and closes."""

    def __init__(self, conn: "TCPTestConnection", peer: IPv4Address) -> None:
        super().__init__(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8001))
        self._conn = conn

    def write(self, data: bytes) -> None:
        super().write(data)
        self._conn._on_output()

    def writeSequence(self, seq: Any) -> None:
        super().write(b"".join(seq))
        self._conn._on_output()

    def loseConnection(self) -> None:
        super().loseConnection()
        self._conn._lost()

    def abortConnection(self) -> None:
        self.loseConnection()


class TCPTestConnection:
    """One in-memory TCP client.

    ``send(obj)`` takes a dict (sent as JSON), an XML string or a raw line and
    fires with the reply to it. ``replies`` and ``pushes`` collect everything
    the server sent (parsed when JSON or XML), in order.
    """

    __test__ = False

    def __init__(self, factory: Any, host: str, port: int) -> None:
        self.client_id = f"{host}:{port}"
        self.protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        self.transport = _NotifyingTransport(self, IPv4Address("TCP", host, port))
        self.replies: List[Any] = []
        self.pushes: List[Any] = []
        self.lines: List[bytes] = []
        self.closed = False
        self._consumed = 0
        self._waiting: List[Deferred[Any]] = []
        self._sent = 0
        self.protocol.makeConnection(self.transport)

    def send(self, message: Union[Dict[str, Any], str, bytes]) -> Deferred[Any]:
        """Send one request line; fires with its (parsed) reply."""
        if isinstance(message, dict):
            line = json_bytes(message)
        elif isinstance(message, str):
            line = message.encode("utf-8")
        else:
            line = message
        if not line.endswith(b"\n"):
            line += b"\n"
        d: Deferred[Any] = Deferred()
        if self.closed:
            d.errback(ConnectionDone("the server closed this connection"))
            return d
        self._waiting.append(d)
        self.send_bytes(line)
        return d

    def send_bytes(self, data: bytes) -> None:
        """Deliver raw bytes to the server (no framing added)."""
        if not self.closed:
            self.protocol.dataReceived(data)

    def _on_output(self) -> None:
        data = self.transport.value()
        end = data.rfind(b"\n")
        if end < self._consumed:
            return
        chunk = data[self._consumed:end]
        self._consumed = end + 1
        for line in chunk.split(b"\n"):
            self.lines.append(line)
            parsed = _parse_reply(line)
            if _is_push(parsed, line):
                self.pushes.append(parsed)
            else:
                self.replies.append(parsed)
                if self._waiting:
                    self._waiting.pop(0).callback(parsed)

    def _lost(self) -> None:
        if not self.closed:
            self.closed = True
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                    d.errback(ConnectionDone("closed before a reply"))
            self.protocol.connectionLost(Failure(ConnectionDone()))

    def close(self) -> None:
        """Close the connection from the client side."""
        self._lost()


def _parse_reply(line: bytes) -> Any:
    head = line[:1]
    try:
        if head != b"<":
            return loads_json(line)
    except DecodeError:
        return line.decode("utf-8", "replace")
    try:
        if head == b"<":
            element = parse_xml(line)
            data = xml_to_data(element)
            return {"tag": element.tag, "attrib": dict(element.attrib), "data": data}
    except DecodeError:
        pass
    return line.decode("utf-8", "replace")


def _is_push(parsed: Any, line: bytes) -> bool:
    if isinstance(parsed, dict):
        return parsed.get("type") == "push" or parsed.get("tag") == "push"
    return False
