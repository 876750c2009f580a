"""Testing a pyliteflux chat app with pyliteflux.testing (runs under trial and pytest)."""
import time

from twisted.trial import unittest

from pyliteflux import Router, Server
from pyliteflux.testing import TestClient


def make_app():
    server = Server(router=Router())          # own router: tests never share routes
    server.config.tcp_keep_alive = True

    @server.route("/hello", method="GET")
    def hello(request):
        target_client = request.query_params.get("client_id")

        def heavy_task():
            time.sleep(0.01)                      # stands in for slow work
            server.push_message("Hello via HTTP GET!", target_client)

        request.bg.add(heavy_task)
        return {"message": "Hello via HTTP GET!", "target_client": target_client}

    @server.route("subscribe", protocol="tcp")
    def subscribe(request):
        return {"message": "subscribed", "client_id": request.client_id}

    @server.route("clients", protocol="tcp")
    def clients(request):
        return {"clients": list(server.connections), "count": len(server.connections)}

    return server


class ChatAppTests(unittest.TestCase):
    def setUp(self):
        self.server = make_app()
        self.client = TestClient(self.server)      # background jobs run synchronously

    async def test_hello_pushes_to_the_subscriber(self):
        conn = self.client.connect()
        reply = await conn.send({"command": "subscribe", "id": 1})
        self.assertEqual(reply["message"], "subscribed")

        response = await self.client.get("/hello", params={"client_id": conn.client_id})
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json()["target_client"], conn.client_id)
        self.assertEqual(conn.pushes, [{"type": "push", "data": "Hello via HTTP GET!"}])

    async def test_clients_lists_connections(self):
        a, b = self.client.connect(), self.client.connect()
        reply = await a.send("clients")
        self.assertEqual(reply["count"], 2)
        b.close()
        self.assertEqual((await a.send("clients"))["count"], 1)

    async def test_unknown_route(self):
        response = await self.client.get("/nope")
        self.assertEqual(response.code, 404)
