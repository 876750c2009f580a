"""Each file in examples/ driven through pyliteflux.testing, as the seed describes it."""

import os
import re

from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux.testing import TestClient, load_app

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class HelloExampleTests(TestCase):
    async def test_hello(self):
        client = TestClient(load_app("examples.hello:server"))
        r = await client.get("/hello")
        self.assertEqual(r.code, 200)
        self.assertEqual(r.header("content-type"), "application/json")
        self.assertEqual(r.body, b'{"message": "Hello, World!"}')


class MiddlewareExampleTests(TestCase):
    def setUp(self):
        self.client = TestClient(load_app("examples.middleware:server"))

    async def test_without_token(self):
        r = await self.client.get("/user")
        self.assertEqual(r.json(), {"error": "Unauthorized", "authenticated": False})

    async def test_with_token(self):
        r = await self.client.get("/user", headers={"Authorization": "secret"})
        body = r.json()
        self.assertEqual(body["message"], "User info")
        self.assertEqual(body["user"], {"id": 1, "name": "user1"})
        self.assertTrue(body["authenticated"])
        self.assertTrue(body["request_id"])


class ContextExampleTests(TestCase):
    def setUp(self):
        self.server = load_app("examples.context:server")
        self.client = TestClient(self.server)
        import examples.context as module

        self.module = module

    async def test_data_uses_and_closes_resources(self):
        closed = self.module.Database.closed
        r = await self.client.get("/data")
        body = r.json()
        self.assertEqual(body["data"], [{"id": 1, "name": "user1"}])
        self.assertEqual(body["cached"], "cached")
        self.assertTrue(body["request_id"])
        self.assertEqual(self.module.Database.closed, closed + 1)

    async def test_async_job_runs_with_its_own_g(self):
        r = await self.client.get("/async")
        self.assertEqual(r.json(), {"message": "Task scheduled"})
        self.assertEqual(self.server.jobs.stats.done, 1)


class ChatExampleTests(TestCase):
    def setUp(self):
        if not os.path.exists(os.path.join(ROOT, "examples", "chat.py")):
            raise self.skipTest("examples/chat.py not present")
        self.server = load_app("examples.chat:server")
        self.client = TestClient(self.server, jobs="capture")

    async def test_subscribe_clients_and_push(self):
        import examples.chat as chat

        conn = self.client.connect()
        reply = await conn.send({"command": "subscribe"})
        self.assertEqual(reply["client_id"], conn.client_id)
        reply = await conn.send({"command": "clients"})
        self.assertEqual(reply["clients"], [conn.client_id])
        r = await self.client.get("/hello", params={"client_id": conn.client_id})
        self.assertEqual(r.json()["target_client"], conn.client_id)
        self.patch(chat.time, "sleep", lambda seconds: None)  # the seed's 5 s stand-in
        await self.client.jobs.run_all()
        self.assertEqual(conn.pushes, [{"type": "push", "data": "Hello via HTTP GET!"}])


class ReadmeTests(SynchronousTestCase):
    def test_readme_testing_section_is_the_example_file(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        block = re.search(r"<!-- readme-test:start -->\n```python\n(.*?)```\n<!-- readme-test:end -->",
                          readme, re.S)
        self.assertIsNotNone(block)
        with open(os.path.join(ROOT, "examples", "test_chat_app.py"), encoding="utf-8") as f:
            self.assertEqual(block.group(1), f.read())


# The README's worked example runs as part of this suite.
from examples.test_chat_app import ChatAppTests as ReadmeChatAppTests  # noqa: E402,F401


class ApiExampleTests(TestCase):
    def setUp(self):
        self.client = TestClient(load_app("examples.api:server"))

    async def test_request_parameters(self):
        r = await self.client.get("/search?keyword=twisted")
        self.assertEqual(r.json()["keyword"], "twisted")
        self.assertEqual(r.json()["page"], "1")
        r = await self.client.get("/user/1/posts/2")
        self.assertEqual(r.json()["user_id"], "1")
        r = await self.client.post("/upload", data={"file_name": "a.txt", "content": "x"})
        self.assertEqual(r.json()["file_name"], "a.txt")
        r = await self.client.post("/api/data", json={"a": 1})
        self.assertEqual(r.json()["received"], {"a": 1})

    async def test_http_json_responses(self):
        r = await self.client.get("/api/user")
        self.assertEqual((r.code, r.header("x-custom-header")), (200, "value"))
        r = await self.client.get("/api/error")
        self.assertEqual((r.code, r.json()["error"]), (404, "Not Found"))
        r = await self.client.get("/api/custom")
        self.assertEqual(r.json()["message"], "Custom serialization")
        self.assertIn("T", r.json()["timestamp"])

    async def test_scenarios(self):
        r = await self.client.get("/admin")
        self.assertEqual(r.code, 403)
        r = await self.client.get("/admin", headers={"Authorization": "root"})
        self.assertEqual(r.json()["message"], "Welcome, admin!")
        r = await self.client.get("/trace")
        body = r.json()
        self.assertEqual([t["event"] for t in body["traces"]], ["processing", "completed"])
        self.assertTrue(body["trace_id"])


class ClusterExampleTests(TestCase):
    """examples/cluster.py on the local backend (one node); the Redis side
    runs in tests/test_push_redis_cluster.py."""

    async def test_whoami_subscribe_push_presence(self):
        server = load_app("examples.cluster:server")
        client = TestClient(server)
        conn = client.connect()
        me = await conn.send("whoami")
        self.assertEqual(me["node"], server.hub.node_id)
        self.assertEqual(await conn.send("subscribe news"), {"topics": ["news"]})
        r = await client.get("/push?topic=news&message=extra")
        self.assertEqual(r.json()["reached_here"], 1)
        self.assertEqual(conn.pushes, [{"type": "push", "topic": "news", "data": "extra"}])
        r = await client.get("/presence")
        self.assertEqual(r.json(), {me["client_id"]: server.hub.node_id})
