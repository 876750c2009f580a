"""The seed's streaming examples, plus their non-blocking counterparts.

Run it with ``python examples/streaming.py`` (HTTP on 127.0.0.1:8000) or
``twistd -n pyliteflux --app examples.streaming:server``, then::

    curl -N http://127.0.0.1:8000/stream            # seed: SSE, 10 events, 1 s apart
    curl -N http://127.0.0.1:8000/stream-async      # same events, reactor stays free
    curl -N http://127.0.0.1:8000/events            # sse_response + heartbeat
    curl -OJ http://127.0.0.1:8000/download         # seed: file download
    curl -OJ http://127.0.0.1:8000/download-threaded
    curl -N 'http://127.0.0.1:8000/api/complex?type=stream'   # seed: ndjson

Caveat on the seed's ``/stream``: its generator calls ``time.sleep(1)``, and
generators run on the reactor thread, so while it sleeps *every* other
request and connection of this server waits too. It still works (kept
verbatim), but real code should use ``/stream-async``'s pattern (an async
generator awaiting ``deferLater``) or wrap a blocking iterator in
``in_thread(...)`` as ``/download-threaded`` does. See docs/streaming.md.
"""
import json
import os
import time

from twisted.internet import task

from pyliteflux import HTTPJSONResponse, Route, Server, StreamResponse
from pyliteflux.streaming import in_thread, sse_event, sse_response

server = Server()

# The seed reads "large_file.txt" from the working directory; we keep a small
# one next to this file (written on first import, never committed) and open
# it by that path, so the example works from any directory.
LARGE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "large_file.txt")
if not os.path.exists(LARGE_FILE):
    with open(LARGE_FILE + ".part", "w", encoding="utf-8") as out:
        for n in range(20000):  # ~1 MB
            out.write(f"line {n:05d}: pyliteflux streams this file in 8 KiB chunks\n")
    os.replace(LARGE_FILE + ".part", LARGE_FILE)


# -- the seed, as published ------------------------------------------------------------

@Route.register("/stream", method="GET")
def stream_data(request):
    def generate_data():
        for i in range(10):
            time.sleep(1)  # 模拟数据生成 (blocks the reactor: see /stream-async)
            yield f"data: {i}\n\n"

    return StreamResponse(
        generate_data(),
        content_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "Connection": "keep-alive"
        }
    )


# 带参数的流式响应
@Route.register("/download", method="GET")
def download_file(request):
    def file_reader():
        with open(LARGE_FILE, "rb") as f:  # seed: open("large_file.txt", "rb")
            while chunk := f.read(8192):
                yield chunk

    return StreamResponse(
        file_reader(),
        content_type="application/octet-stream",
        headers={
            "Content-Disposition": "attachment; filename=large_file.txt"
        }
    )


@Route.register("/api/complex", method="GET")
def complex_response(request):
    response_type = request.query_params.get("type", "json")

    if response_type == "stream":
        def stream():
            for i in range(5):
                yield json.dumps({"count": i}) + "\n"
        return StreamResponse(stream(), content_type="application/x-ndjson")

    elif response_type == "error":
        return HTTPJSONResponse(
            {"error": "Bad Request"},
            status=400,
            headers={"X-Error-Details": "Invalid type"}
        )

    else:
        return {"message": "Regular JSON response"}  # 自动转换为JSON


# -- the non-blocking way ------------------------------------------------------------------

@Route.register("/stream-async", method="GET")
def stream_data_async(request):
    """``/stream`` without blocking: the wait is a Deferred, not a sleep."""
    interval = float(request.query_params.get("interval", "1"))

    async def generate_data():
        for i in range(10):
            await task.deferLater(server.reactor, interval, lambda: None)
            yield f"data: {i}\n\n"

    return StreamResponse(
        generate_data(),
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


@Route.register("/events", method="GET")
def events(request):
    """Safely framed events (``sse_event``) with a heartbeat comment when idle."""
    interval = float(request.query_params.get("interval", "1"))

    async def ticks():
        for i in range(10):
            await task.deferLater(server.reactor, interval, lambda: None)
            yield sse_event(data={"tick": i, "time": time.time()}, event="tick", id=i)

    return sse_response(ticks(), heartbeat=15)


@Route.register("/download-threaded", method="GET")
def download_file_threaded(request):
    """``/download`` for a reader that may block (network disk, slow device)."""
    def file_reader():
        with open(LARGE_FILE, "rb") as f:
            while chunk := f.read(65536):
                yield chunk

    return StreamResponse(
        in_thread(file_reader()),
        content_type="application/octet-stream",
        headers={"Content-Disposition": "attachment; filename=large_file.txt"},
    )


server.run()
