"""A tiny line client for end-to-end tests over real loopback sockets."""

import json
import socket

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import LineOnlyReceiver


def exchange(port, data, half_close=False, wait=0.0, host="127.0.0.1", timeout=10):
    """Blocking socket I/O (run it with deferToThread, never on the reactor):
    send ``data``, optionally half-close, optionally wait before reading,
    then read until the server closes (or ``timeout`` passes)."""
    import time

    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        if wait:
            time.sleep(wait)  # in a worker thread: lets the server's socket fill up
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def send_then_eof(port, data):
    """Send ``data``, half-close, read to EOF (``printf ... | nc -N``)."""
    return exchange(port, data, half_close=True)


class LineClient(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 10 * 1024 * 1024

    def __init__(self):
        self.lines = []
        self._waiting = []
        self.closed = defer.Deferred()

    @classmethod
    def connect(cls, port, host="127.0.0.1"):
        return connectProtocol(TCP4ClientEndpoint(reactor, host, port), cls())

    def lineReceived(self, line):
        try:
            value = json.loads(line)
        except ValueError:
            value = line.decode("utf-8", "replace")
        if self._waiting:
            self._waiting.pop(0).callback(value)
        else:
            self.lines.append(value)

    def next_line(self):
        if self.lines:
            return defer.succeed(self.lines.pop(0))
        d = defer.Deferred()
        self._waiting.append(d)
        return d

    def request(self, message):
        self.send(message)
        return self.next_line()

    def send(self, message):
        if isinstance(message, dict):
            message = json.dumps(message)
        if isinstance(message, str):
            message = message.encode()
        self.transport.write(message + b"\n")

    def connectionLost(self, reason=protocol.connectionDone):
        for d in self._waiting:
            d.errback(reason)
        self._waiting = []
        if not self.closed.called:
            self.closed.callback(None)

    def close(self):
        if not self.closed.called:
            self.transport.loseConnection()
        return self.closed
