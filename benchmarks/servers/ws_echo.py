"""Bare autobahn WebSocket echo server (the reference for WebSocket round trips).

Usage: ws_echo.py --port PORT. Echoes every text message back, mounted like
pyliteflux's: autobahn's ``WebSocketResource`` at ``/ws`` in a ``twisted.web``
Site. No limits, no pipeline: the ceiling for autobahn on Twisted.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import QuietSite, raise_nofile  # noqa: E402
from autobahn.twisted.resource import WebSocketResource  # noqa: E402
from autobahn.twisted.websocket import (  # noqa: E402
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from twisted.internet import reactor  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402


class Echo(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    raise_nofile()
    factory = WebSocketServerFactory()
    factory.protocol = Echo
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory))
    reactor.listenTCP(args.port, QuietSite(root), backlog=1024, interface="127.0.0.1")
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
