"""CPU cost of a line trickled in 16-byte pieces (twisted#6357).

    python benchmarks/tcp_trickle.py [--size 65536] [--piece 16]

Feeds one ``--size``-byte line, ``--piece`` bytes per ``dataReceived``, to
Twisted's ``LineReceiver`` and ``LineOnlyReceiver`` (which re-copy the whole
pending line on every chunk: quadratic) and to pyliteflux's ``LineProtocol``
(which keeps the pieces in a list and joins once: linear), over in-memory
transports, and prints the CPU time of each. In-process on purpose: this
measures framing cost alone, not the network.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.protocols.basic import LineOnlyReceiver, LineReceiver  # noqa: E402

from pyliteflux import Router, Server  # noqa: E402


class CountingLR(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1 << 30
    lines = 0

    def lineReceived(self, line):
        self.lines += 1


class CountingLOR(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1 << 30
    lines = 0

    def lineReceived(self, line):
        self.lines += 1


def feed(proto, line, piece):
    proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1)))
    start = time.process_time()
    for i in range(0, len(line), piece):
        proto.dataReceived(line[i:i + piece])
    return time.process_time() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=65536)
    parser.add_argument("--piece", type=int, default=16)
    args = parser.parse_args()
    body = b'{"command": "echo", "data": "' + b"x" * (args.size - 40) + b'"}'
    line = body + b"\n"

    server = Server(router=Router(), info=False, tcp_keep_alive=True,
                    max_line_length=args.size + 1)
    server.route("echo", protocol="tcp")(lambda r: len(r.data))
    factory = server.tcp_factory()
    ours = factory.buildProtocol(None)
    results = [
        ("twisted LineReceiver", feed(CountingLR(), line, args.piece)),
        ("twisted LineOnlyReceiver", feed(CountingLOR(), line, args.piece)),
        ("pyliteflux LineProtocol", feed(ours, line, args.piece)),
    ]
    print(f"one {len(line)}-byte line in {args.piece}-byte pieces "
          f"({len(line) // args.piece} dataReceived calls):")
    for name, seconds in results:
        print(f"  {name:<26} {seconds * 1000:9.2f} ms CPU")


if __name__ == "__main__":
    main()
