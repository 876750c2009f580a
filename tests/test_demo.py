"""The bundled demo app: the chat page at ``/``, the route list at
``/routes``, and the chat commands shared by browsers and TCP clients."""

import re

from twisted.trial.unittest import TestCase

from pyliteflux.demo import chat_page, make_server
from pyliteflux.testing import TestClient, serve
from tests.tcp_client import LineClient
from tests.ws_client import RawWebSocket


class DemoTests(TestCase):
    async def test_index_is_the_chat_page(self):
        client = TestClient(make_server(info=False))
        r = await client.get("/")
        self.assertEqual(r.code, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        self.assertIn('const WS_PATH = "/ws";', r.text())
        self.assertIn("default-src 'self'", r.header("Content-Security-Policy"))

    def test_page_loads_nothing_from_another_host(self):
        page = chat_page("/ws")
        self.assertEqual(re.findall(r"(?:src|href)\s*=", page), [])
        self.assertEqual(re.findall(r"https?://(?!127\.0\.0\.1:8000/)", page), [])
        self.assertNotIn("__WEBSOCKET_PATH__", page)

    def test_websocket_path_is_escaped_into_the_page(self):
        self.assertIn(r'"/a\u003c/script>"', chat_page("/a</script>"))

    async def test_routes_lists_the_routes(self):
        client = TestClient(make_server(info=False))
        body = (await client.get("/routes")).json()
        self.assertIn("/say", body["http"])
        self.assertIn("say", body["tcp"])

    async def test_say_reaches_browsers_and_nc_clients(self):
        server = make_server(info=False)
        running = await serve(server)
        self.addCleanup(running.stop)
        browser = await RawWebSocket.open(running.http_port)
        self.addCleanup(browser.close)
        joined = await browser.request({"command": "join", "data": "chat"})
        self.assertEqual(joined["joined"], "chat")
        nc = await LineClient.connect(running.tcp_port)
        self.addCleanup(nc.close)
        await nc.request("clients")
        nc.send("say hello all")
        self.assertEqual((await nc.next_line())["data"]["text"], "hello all")  # its own push
        self.assertEqual(await nc.next_line(), {"said": 2})
        push = await browser.next()
        self.assertEqual(push["topic"], "chat")
        self.assertEqual(push["data"]["text"], "hello all")
        browser.send({"command": "say", "data": "", "id": 1})
        self.assertIn("error", await browser.next())


