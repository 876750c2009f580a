"""The app the worker tests serve with ``python -m pyliteflux --workers 2``.

Each answer names the process (``pid``) and ``server.worker_id``, so a test
can tell which worker served it. ``WORKERS_APP_CRASH=1`` makes every worker
exit at import (the crash-loop test); the supervisor itself is unaffected.
"""

import os

from twisted.internet.task import deferLater

from pyliteflux import Logger, Server
from pyliteflux.core.routing import Router

if os.environ.get("WORKERS_APP_CRASH") and os.environ.get("PYLITEFLUX_WORKER_ID"):
    raise SystemExit(3)

router = Router()
server = Server(router=router)
server.config.tcp_keep_alive = True
_log = Logger("workers_app")


@router.register("/pid", method="GET")
def pid(request):
    return {"pid": os.getpid(), "worker": server.worker_id}


@router.register("/push", method="GET")
def push(request):
    q = request.query_params
    message = q.get("message", "hi")
    if "client_id" in q:
        reached = server.push_message(message, q["client_id"])
    elif "topic" in q:
        reached = server.push_message(message, topic=q["topic"])
    else:
        reached = server.push_message(message)
    return {"local": reached, "pid": os.getpid()}


@router.register("/presence", method="GET")
def presence(request):
    return server.presence(request.query_params.get("topic"))


@router.register("/slow", method="GET")
def slow(request):
    _log.info("slow request started")
    return deferLater(server.reactor, float(request.query_params.get("seconds", "1")),
                      lambda: {"pid": os.getpid(), "slept": True})


@router.register("whoami", protocol="tcp")
def whoami(request):
    if request.data:
        request.connection.subscribe(request.data)
    return {"pid": os.getpid(), "client_id": request.client_id, "worker": server.worker_id}
