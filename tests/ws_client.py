"""A small, deliberately raw WebSocket client for loopback tests.

It speaks RFC 6455 itself (masked client frames, the opening handshake) so
that hostile tests can send what a polite library would refuse to: invalid
UTF-8, oversized messages, no pongs, or stop reading altogether.
"""

import base64
import json
import os
import socket

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol


def frame(opcode, payload, fin=True, mask=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWebSocket(protocol.Protocol):
    def __init__(self, path="/ws", origin=None, host=None, answer_pings=True):
        self.path = path
        self.origin = origin
        self.host = host
        self.answer_pings = answer_pings
        self.buffer = b""
        self.status = None
        self.response_headers = b""
        self.opened = defer.Deferred()
        self.closed = defer.Deferred()
        self.messages = []
        self._waiting = []
        self.close_code = None
        self.pings = 0

    @classmethod
    def connect(cls, port, rcvbuf=None, **kw):
        proto = cls(**kw)
        proto.port = port
        d = connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), proto)
        return d.addCallback(lambda p: p.opened).addCallback(lambda _: proto)

    @classmethod
    def open(cls, port, **kw):
        """Connect and complete the handshake (a Deferred of the client)."""
        def check(proto):
            if proto.status != 101:
                raise AssertionError(f"handshake answered {proto.status}")
            return proto

        return cls.connect(port, **kw).addCallback(check)

    def connectionMade(self):
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host or f'127.0.0.1:{self.port}'}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if self.origin:
            lines.append(f"Origin: {self.origin}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def dataReceived(self, data):
        self.buffer += data
        if self.status is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            self.status = int(head.split(b" ", 2)[1])
            self.response_headers = head
            self.opened.callback(self)
        while len(self.buffer) >= 2:
            b0, b1 = self.buffer[0], self.buffer[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(self.buffer) < 4:
                    return
                n, at = int.from_bytes(self.buffer[2:4], "big"), 4
            elif n == 127:
                if len(self.buffer) < 10:
                    return
                n, at = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < at + n:
                return
            payload, self.buffer = self.buffer[at:at + n], self.buffer[at + n:]
            self._frame(b0 & 0x0F, payload)

    def _frame(self, opcode, payload):
        if opcode == 1:
            text = payload.decode("utf-8")
            try:
                value = json.loads(text)
            except ValueError:
                value = text
            if self._waiting:
                self._waiting.pop(0).callback(value)
            else:
                self.messages.append(value)
        elif opcode == 9:
            self.pings += 1
            if self.answer_pings:
                self.transport.write(frame(10, payload))
        elif opcode == 8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.transport.write(frame(8, payload[:2]))

    def connectionLost(self, reason=None):
        for waiter in self._waiting:
            waiter.errback(ConnectionError(f"closed ({self.close_code})"))
        self._waiting = []
        self.closed.callback(self.close_code)

    # -- API -----------------------------------------------------------------------

    def send(self, message):
        if isinstance(message, dict):
            message = json.dumps(message)
        if isinstance(message, str):
            message = message.encode("utf-8")
        self.transport.write(frame(1, message))

    def next(self):
        if self.messages:
            return defer.succeed(self.messages.pop(0))
        d = defer.Deferred()
        self._waiting.append(d)
        return d

    async def request(self, message):
        self.send(message)
        return await self.next()

    def stop_reading(self, rcvbuf=4096):
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.transport.pauseProducing()

    def close(self):
        if self.transport is not None and self.transport.connected:
            self.transport.abortConnection()
