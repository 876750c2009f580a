"""aiohttp serving the hello JSON (asyncio's default loop, access log off)."""

import asyncio

from _common import HELLO, parse, ready
from aiohttp import web


async def hello(request):
    return web.Response(body=HELLO, content_type="application/json")


async def serve(port):
    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    ready(runner.addresses[0][1])
    await asyncio.Event().wait()


def main():
    args = parse(("hello",))
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
