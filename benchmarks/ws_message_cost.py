#!/usr/bin/env python3
"""Python cost of one WebSocket round trip, in process: no sockets, no reactor.

    python benchmarks/ws_message_cost.py [--rounds 7] [--messages 20000]

Completes the opening handshake of a server protocol over an in-memory
transport, then feeds it ws_bench's masked ``echo`` message one at a time
and times the CPU per message (the reply is written to the transport), for
the bare autobahn echo of ``servers/ws_echo.py`` and for pyliteflux's
``WebSocketProtocol`` with the ``echo`` command of ``servers/pyliteflux_ws.py``.
Rounds are interleaved and the minimum is kept (noise only ever adds time).
A diagnostic for the per-message path next to ``ws_bench.py``, whose
loopback figures move a lot on a shared machine; it leaves out the reactor,
the kernel and the client.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# benchmarks/profile.py would shadow the standard library's profile module
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, Dict, List, Tuple  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "servers"))
sys.path.insert(0, os.path.dirname(HERE))

from autobahn.twisted.websocket import WebSocketServerFactory  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from ws_echo import Echo  # noqa: E402

from pyliteflux import Router, Server  # noqa: E402
from pyliteflux.adapters.websocket import WebSocketFactory  # noqa: E402

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")
MASK = b"\x01\x02\x03\x04"


def client_frame(payload: bytes) -> bytes:
    """A masked text frame (as ws_bench's client sends; payload < 126 bytes)."""
    return (b"\x81" + bytes([0x80 | len(payload)]) + MASK
            + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload)))


MESSAGE = client_frame(json.dumps({"command": "echo", "data": {"n": 1, "s": "hello"}}).encode())


def bare() -> Any:
    factory = WebSocketServerFactory()
    factory.protocol = Echo
    return factory.buildProtocol(None)


def pyliteflux() -> Any:
    server = Server(router=Router(), info=False)
    server.route("echo", protocol="tcp")(lambda request: request.data)
    return WebSocketFactory(server.adapter_context).buildProtocol(None)


def opened(make: Callable[[], Any]) -> Tuple[Any, StringTransport]:
    proto = make()
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    proto.makeConnection(transport)
    proto.dataReceived(HANDSHAKE)
    if b" 101 " not in transport.value().split(b"\r\n", 1)[0]:
        raise SystemExit(f"handshake answered {transport.value()[:60]!r}")
    transport.clear()
    proto.dataReceived(MESSAGE)
    if not transport.value():
        raise SystemExit("no reply to the echo message")
    transport.clear()
    return proto, transport


def one_round(make: Callable[[], Any], messages: int) -> float:
    proto, transport = opened(make)
    feed, clear = proto.dataReceived, transport.clear
    gc.collect()
    start = time.process_time()
    for _ in range(messages):
        feed(MESSAGE)
        clear()
    return (time.process_time() - start) / messages * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--messages", type=int, default=20000)
    args = p.parse_args()
    servers: Dict[str, Callable[[], Any]] = {"bare autobahn": bare, "pyliteflux": pyliteflux}
    best: Dict[str, List[float]] = {name: [] for name in servers}
    for _ in range(args.rounds):
        for name, make in servers.items():
            best[name].append(one_round(make, args.messages))
    low = {name: min(times) for name, times in best.items()}
    for name, us in low.items():
        print(f"{name:>14}: {us:6.2f} us per message (min of {args.rounds})")
    print(f"pyliteflux / bare autobahn: {low['pyliteflux'] / low['bare autobahn']:.3f}")


if __name__ == "__main__":
    main()
