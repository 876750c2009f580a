"""The bundled demo app: what ``twistd -n pyliteflux`` serves without ``--app``.

It uses its own ``Router`` (not the process-wide ``Route.default``), so
building it never adds routes to an application's registry. Try it::

    python -m pyliteflux                      # or: twistd -n pyliteflux
    curl http://127.0.0.1:8000/hello
    curl -N http://127.0.0.1:8000/stream?count=5
    nc 127.0.0.1 8001                         # then type: subscribe
    curl "http://127.0.0.1:8000/hello?client_id=127.0.0.1:PORT"   # push after 1 s

HTTP routes: ``/`` (this list), ``/hello`` (``?client_id=`` pushes "Hello via
HTTP GET!" to that TCP client from a background job after ``delay`` s),
``/push?client_id=&message=``, ``/broadcast?message=``, ``/stream`` (server-sent
events from a non-blocking generator) and ``/slow?seconds=`` (answers after a
while; handy to watch graceful shutdown). TCP commands: ``subscribe``,
``clients``, ``echo``.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from twisted.internet.task import deferLater

from .app import Server
from .core.errors import BadRequest
from .core.responses import StreamResponse
from .core.routing import Router
from .log import Logger

__all__ = ["make_server"]

_log = Logger("pyliteflux.demo")


def _number(request: Any, name: str, default: float, low: float, high: float) -> float:
    text: Optional[str] = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name} must be a number", value=text) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be in {low:g}..{high:g}", value=text)
    return value


def make_server(reactor: Any = None, **settings: Any) -> Server:
    """A fresh demo server (own router; TCP keep-alive on, for push)."""
    router = Router()
    server = Server(router=router, reactor=reactor)
    server.config.tcp_keep_alive = True
    if settings:
        server.config.update(**settings)

    @router.register("/", method="GET")
    def index(request: Any) -> Any:
        return {
            "app": "pyliteflux demo",
            "http": sorted({entry.path for entry in router.routes() if entry.protocol == "http"}),
            "tcp": router.commands(),
        }

    # -- the seed's quick start and its TCP chat example ------------------------------

    @router.register("/hello", method="GET")
    def hello(request: Any) -> Any:
        target = request.query_params.get("client_id")
        if target is None:
            return {"message": "Hello, World!"}
        delay = _number(request, "delay", 1.0, 0, 30)

        def heavy_task() -> None:  # runs on the job thread pool
            time.sleep(delay)
            server.push_message("Hello via HTTP GET!", target)

        request.bg.add(heavy_task)
        return {
            "message": "Hello via HTTP GET!",
            "target_client": target,
            "query_params": request.query_params,
        }

    @router.register("/push", method="GET")
    def push(request: Any) -> Any:
        client_id = request.query_params.get("client_id")
        if not client_id:
            raise BadRequest("client_id is required")
        message = request.query_params.get("message", "Hello!")
        if server.worker_id is not None and client_id not in server.connections:
            # under workers (SPEC §15) another worker may hold it: ask the cluster
            def relayed(presence: Any) -> Any:
                if client_id not in presence:
                    return {"status": "unknown client", "client_id": client_id}, 404
                server.push_message(message, client_id)
                return {"status": "sent", "worker": presence[client_id]}

            return server.presence().addCallback(relayed)
        reached = server.push_message(message, client_id)
        if not reached:
            return {"status": "unknown client", "client_id": client_id}, 404
        return {"status": "sent"}

    @router.register("/broadcast", method="GET")
    def broadcast(request: Any) -> Any:
        message = request.query_params.get("message", "Broadcast!")
        return {"status": "broadcasted", "reached": server.push_message(message)}

    @router.register("clients", protocol="tcp")
    def list_clients(request: Any) -> Any:
        clients = list(server.connections.keys())
        return {"message": "Active TCP clients", "clients": clients, "count": len(clients)}

    @router.register("subscribe", protocol="tcp")
    def subscribe_tcp(request: Any) -> Any:
        return {"message": "subscribed", "client_id": request.client_id}

    @router.register("echo", protocol="tcp")
    def echo(request: Any) -> Any:
        return {"echo": request.data}

    # -- streaming and slow responses -------------------------------------------------

    @router.register("/stream", method="GET")
    def stream(request: Any) -> StreamResponse:
        count = int(_number(request, "count", 10, 1, 10000))
        interval = _number(request, "interval", 0.5, 0, 60)

        def events() -> Any:
            # Non-blocking: each item is a Deferred that fires after `interval`
            # seconds, so the reactor serves everyone else in between.
            for i in range(count):
                yield deferLater(server.reactor, interval if i else 0,
                                 lambda i=i: f"data: {i}\n\n")

        return StreamResponse(events(), content_type="text/event-stream",
                              headers={"Cache-Control": "no-cache"})

    @router.register("/slow", method="GET")
    def slow(request: Any) -> Any:
        seconds = _number(request, "seconds", 2.0, 0, 300)
        _log.info(f"slow request: answering in {seconds:g}s")
        return deferLater(server.reactor, seconds, lambda: {"slept": seconds})

    return server


if __name__ == "__main__":  # pragma: no cover
    make_server().run()
