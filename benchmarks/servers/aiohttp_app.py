"""aiohttp under the same loads (asyncio's default loop, access log off).

Modes: ``hello`` (the hello JSON), ``post`` (POST /echo re-encodes the
JSON body), ``params`` (GET /r{i}/{id} for i in 0..99).
"""

import asyncio
import json

from _common import HELLO, parse, ready
from aiohttp import web


async def hello(request):
    return web.Response(body=HELLO, content_type="application/json")


async def echo(request):
    return web.Response(body=json.dumps(await request.json()).encode(),
                        content_type="application/json")


def item(i):
    async def handler(request):
        return web.Response(body=json.dumps({"route": i, "id": request.match_info["id"]})
                            .encode(), content_type="application/json")
    return handler


async def serve(mode, port):
    app = web.Application()
    if mode == "hello":
        app.router.add_get("/hello", hello)
    elif mode == "post":
        app.router.add_post("/echo", echo)
    else:
        for i in range(100):
            app.router.add_get(f"/r{i}/{{id}}", item(i))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    ready(runner.addresses[0][1])
    await asyncio.Event().wait()


def main():
    args = parse(("hello", "post", "params"))
    asyncio.run(serve(args.mode, args.port))


if __name__ == "__main__":
    main()
