"""pyliteflux for the WebSocket benchmarks: a TCP/WebSocket ``echo`` command
and ``GET /broadcast`` (one push to every client).

Usage: pyliteflux_ws.py --port HTTP_PORT --tcp-port TCP_PORT
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _common import PUSH_MESSAGE, raise_nofile  # noqa: E402

from pyliteflux import Server  # noqa: E402
from pyliteflux.core.routing import Router  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tcp-port", type=int, required=True)
    args = p.parse_args()
    raise_nofile()
    server = Server(router=Router(), info=False, tcp_keep_alive=True,
                    max_http_connections=20000, max_tcp_connections=20000,
                    http_endpoint=f"tcp:{args.port}:interface=127.0.0.1:backlog=1024",
                    tcp_endpoint=f"tcp:{args.tcp_port}:interface=127.0.0.1:backlog=1024")
    server.route("echo", protocol="tcp")(lambda request: request.data)
    server.route("/broadcast")(lambda request: {"reached": server.push_message(PUSH_MESSAGE)})
    print("ready", flush=True)
    server.run()


if __name__ == "__main__":
    main()
