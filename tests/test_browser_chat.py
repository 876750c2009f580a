"""End to end in real headless Chromium (SPEC §14): the demo's chat page over
the WebSocket, and an ``EventSource`` on ``sse_path`` as a push target.

Chromium is driven over the DevTools protocol (``tests/chromium.py``): the
test waits on the page's own state, triggers pushes over HTTP and TCP, and
types into the page. Skipped only where no Chromium is installed, and never
in CI (``CI=true``): there a missing Chromium fails.
"""

import json

import treq
from twisted.trial import unittest

from pyliteflux.demo import make_server
from pyliteflux.testing import serve
from tests.chromium import SKIP, Browser
from tests.tcp_client import LineClient

LOG_TEXT = "document.getElementById('log').textContent"


class ChatPageTests(unittest.TestCase):
    timeout = 120
    if SKIP:
        skip = SKIP

    async def start(self):
        self.server = make_server(info=False)
        self.running = await serve(self.server)
        self.addCleanup(self.running.stop)
        self.browser = await Browser.start(self.running.url("/"))
        self.addCleanup(self.browser.stop)
        await self.browser.wait_for("document.body.dataset.state === 'joined'")

    async def test_chat_page_shows_http_push_and_reaches_nc_clients(self):
        await self.start()
        nc = await LineClient.connect(self.running.tcp_port)
        self.addCleanup(nc.close)
        await nc.request("clients")  # registered, like a person typing into nc
        self.assertEqual(len(self.server.hub.subscribers("chat")), 1)  # the page joined

        reply = await treq.get(self.running.url("/say?text=hello+from+curl"), persistent=False)
        self.assertEqual(json.loads(await reply.text()), {"said": 2})  # the page and nc
        shown = await self.browser.wait_for(
            f"{LOG_TEXT}.includes('hello from curl') && {LOG_TEXT}")
        self.assertIn("http", shown)
        self.assertEqual((await nc.next_line())["data"], {"from": "http",
                                                          "text": "hello from curl"})

        await self.browser.evaluate(
            "document.getElementById('text').value = 'hi from the browser';"
            "document.getElementById('form').requestSubmit(); true")
        pushed = await nc.next_line()
        self.assertEqual(pushed["data"]["text"], "hi from the browser")
        self.assertTrue(pushed["data"]["from"].startswith("ws:127.0.0.1:"))
        await self.browser.wait_for(f"{LOG_TEXT}.includes('hi from the browser')")

        nc.send("say hello from nc")
        await self.browser.wait_for(f"{LOG_TEXT}.includes('hello from nc')")

    async def test_eventsource_receives_push_message(self):
        await self.start()
        await self.browser.evaluate("""
            window.got = [];
            window.source = new EventSource('/events?topic=news');
            source.addEventListener('hello', (e) => { window.hello = JSON.parse(e.data); });
            source.onmessage = (e) => window.got.push(JSON.parse(e.data));
            true""")
        hello = await self.browser.wait_for("window.hello")
        self.assertEqual(self.server.connections[hello["client_id"]].transport_name, "sse")
        self.assertEqual(self.server.push_message({"headline": "breaking"}, topic="news"), 1)
        got = await self.browser.wait_for("window.got.length && window.got")
        self.assertEqual(got, [{"type": "push", "topic": "news",
                                "data": {"headline": "breaking"}}])
