"""pyliteflux under test (imported from the checkout this file lives in).

Modes:
  hello     GET /hello -> {"message": "Hello, World!"}, no middleware
  hello_mw  the same with 2 trivial middlewares that set and read ``g``
  hello_metrics  hello with SPEC §16's metrics on (metrics_endpoint on a free port)
  post      POST /echo -> request.json_data (re-encoded as JSON)
  params    GET /r{i}/{id} for i in 0..99 -> {"route": i, "id": id}
  echo      TCP command "echo" returning the request's data dict (keep-alive)
  push      keep-alive TCP clients; GET /broadcast calls server.push_message

An HTTP mode with ``-llhttp`` appended (``hello-llhttp``) runs it on the
llhttp engine (``http_engine = "llhttp"``, SPEC §17).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _common import PUSH_MESSAGE, parse, ready  # noqa: E402
from twisted.internet import reactor  # noqa: E402

from pyliteflux import Middleware, Server, g  # noqa: E402
from pyliteflux.core.routing import Router  # noqa: E402

_HTTP_MODES = ("hello", "hello_mw", "post", "params")
MODES = ("hello", "hello_mw", "hello_metrics", "post", "params", "echo", "push") + tuple(
    m + "-llhttp" for m in _HTTP_MODES)


class SetUser(Middleware):
    def process_request(self, request):
        g.user = "bench"
        return None

    def process_response(self, request, response):
        if g.user != "bench":
            raise AssertionError("g.user lost")
        return response


class ReadUser(Middleware):
    def process_request(self, request):
        g.seen = g.user
        return None

    def process_response(self, request, response):
        if g.seen != "bench":
            raise AssertionError("g.seen lost")
        return response


def build(mode, http_port, tcp_port):
    server = Server(router=Router())
    server.config.info = False
    if mode.endswith("-llhttp"):
        mode = mode[:-len("-llhttp")]
        server.config.http_engine = "llhttp"
    server.config.update(
        http_endpoint=f"tcp:{http_port}:interface=127.0.0.1:backlog=1024",
        tcp_endpoint=f"tcp:{tcp_port}:interface=127.0.0.1:backlog=1024",
    )
    if mode == "hello_metrics":
        server.config.metrics_endpoint = "tcp:0:interface=127.0.0.1"
    if mode in ("hello", "hello_mw", "hello_metrics"):
        @server.route("/hello")
        def hello(request):
            return {"message": "Hello, World!"}

        if mode == "hello_mw":
            server.middleware_manager.add_middleware(SetUser())
            server.middleware_manager.add_middleware(ReadUser())
    elif mode == "post":
        @server.route("/echo", method="POST")
        def echo_post(request):
            return request.json_data
    elif mode == "params":
        for i in range(100):
            def item(request, i=i):
                return {"route": i, "id": request.path_params["id"]}

            server.route(f"/r{i}/{{id}}")(item)
    elif mode == "echo":
        server.config.tcp_keep_alive = True

        @server.route("echo", protocol="tcp")
        def echo(request):
            return dict(request.data or {})
    elif mode == "push":
        server.config.update(tcp_keep_alive=True, max_tcp_connections=100000)

        @server.route("/broadcast")
        def broadcast(request):
            return {"reached": server.push_message(PUSH_MESSAGE)}
    return server


def main():
    args = parse(MODES)
    server = build(args.mode, args.port, args.tcp_port)
    side = "tcp" if args.mode == "echo" else "both" if args.mode == "push" else "http"

    def started(listening):
        ready(listening.tcp_port if side == "tcp" else listening.http_port)

    def failed(failure):
        print(f"cannot listen: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
        reactor.stop()

    reactor.callWhenRunning(lambda: server.listen(side).addCallbacks(started, failed))
    reactor.run()


if __name__ == "__main__":
    main()
