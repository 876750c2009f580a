"""The WebSocket adapter's protocol (SPEC §14) over real loopback sockets:
commands in the three line formats, replies in order, pushes and topics,
and hostile clients (oversized, invalid UTF-8, never reading, no pongs)."""


import txaio
from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from pyliteflux import Middleware, Router, Server, g
from pyliteflux.adapters.websocket import WebSocketProtocol, origin_allowed
from pyliteflux.adapters.websocket.protocol import _LOG_OFF
from pyliteflux.testing import serve
from tests.engines import per_engine
from tests.ws_client import RawWebSocket, frame


def app(**config):
    server = Server(router=Router(), info=False, **config)
    route = server.route

    @route("echo", protocol="tcp")
    def echo(request):
        return {"echo": request.data, "transport": request.transport,
                "client_id": request.client_id}

    @route("later", protocol="tcp")
    def later(request):
        seconds = float(request.data or 0.05)
        return task.deferLater(reactor, seconds, lambda: {"slept": seconds})

    @route("join", protocol="tcp")
    def join(request):
        request.connection.subscribe(request.data)
        return {"topics": sorted(request.connection.topics)}

    @route("leave", protocol="tcp")
    def leave(request):
        request.connection.unsubscribe(request.data)
        return {"topics": sorted(request.connection.topics)}

    @route("big", protocol="tcp")
    def big(request):
        return {"blob": "x" * int(request.data)}

    return server


@per_engine
class CommandTests(TestCase):
    async def asyncSetUp(self, **config):
        self.server = app(**config)
        self.running = await serve(self.server, protocol="http")
        self.addCleanup(self.running.stop)
        self.ws = await RawWebSocket.open(self.running.http_port)
        self.addCleanup(self.ws.close)

    async def test_json_command_with_id(self):
        await self.asyncSetUp()
        reply = await self.ws.request({"command": "echo", "data": {"a": 1}, "id": 9})
        self.assertEqual(reply["echo"], {"a": 1})
        self.assertEqual(reply["id"], 9)
        self.assertEqual(reply["transport"], "websocket")
        self.assertTrue(reply["client_id"].startswith("ws:127.0.0.1:"))

    async def test_raw_and_xml_commands(self):
        await self.asyncSetUp()
        self.assertEqual((await self.ws.request("echo some text"))["echo"], "some text")
        xml = await self.ws.request('<request command="echo" id="4"><k>v</k></request>')
        self.assertTrue(xml.startswith('<response id="4">'), xml)
        self.assertIn("<transport>websocket</transport>", xml)

    async def test_unknown_command_and_bad_json(self):
        await self.asyncSetUp()
        self.assertEqual(await self.ws.request({"command": "nope"}),
                         {"error": "Command not found", "command": "nope"})
        self.assertEqual((await self.ws.request("{not json"))["error"], "Invalid JSON")

    async def test_replies_in_request_order(self):
        await self.asyncSetUp()
        self.ws.send({"command": "later", "data": 0.2, "id": 1})
        self.ws.send({"command": "echo", "data": "fast", "id": 2})
        self.ws.send({"command": "later", "data": 0.05, "id": 3})
        ids = [(await self.ws.next())["id"] for _ in range(3)]
        self.assertEqual(ids, [1, 2, 3])

    async def test_registered_while_open_and_removed_after(self):
        await self.asyncSetUp(tcp_keep_alive=False)  # a WebSocket is long-lived anyway
        client_id = (await self.ws.request({"command": "echo"}))["client_id"]
        self.assertEqual(self.server.connections[client_id].transport_name, "websocket")
        self.ws.transport.loseConnection()
        await self.ws.closed
        await task.deferLater(reactor, 0.05, lambda: None)
        self.assertNotIn(client_id, self.server.connections)

    async def test_push_to_client_topic_and_broadcast(self):
        await self.asyncSetUp()
        client_id = (await self.ws.request({"command": "echo"}))["client_id"]
        self.assertEqual(await self.ws.request("join room"), {"topics": ["room"]})
        self.assertEqual(self.server.push_message({"n": 1}, client_id), 1)
        self.assertEqual(await self.ws.next(), {"type": "push", "data": {"n": 1}})
        self.assertEqual(self.server.push_message("hi", topic="room"), 1)
        self.assertEqual(await self.ws.next(), {"type": "push", "topic": "room", "data": "hi"})
        self.assertEqual(self.server.push_message("all"), 1)
        self.assertEqual(await self.ws.next(), {"type": "push", "data": "all"})
        self.assertEqual(await self.ws.request("leave room"), {"topics": []})
        self.assertEqual(self.server.push_message("hi", topic="room"), 0)
        self.assertEqual(self.server.hub.stats.deliveries["websocket"], 3)

    async def test_xml_client_gets_xml_pushes(self):
        await self.asyncSetUp()
        await self.ws.request('<request command="echo"/>')
        self.server.push_message({"k": "v"})
        self.assertEqual(await self.ws.next(), "<push><k>v</k></push>")

    async def test_topic_limit_is_an_error_reply(self):
        await self.asyncSetUp(max_topics_per_connection=1)
        await self.ws.request("join a")
        reply = await self.ws.request("join b")
        self.assertIn("error", reply)
        self.flushLoggedErrors(ValueError)
        self.assertEqual(await self.ws.request("leave a"), {"topics": []})

    async def test_tcp_middlewares_run_and_see_the_transport(self):
        seen = []

        class Tag(Middleware):
            def process_request(self, request):
                g.tag = request.transport
                seen.append(request.command)

            def process_response(self, request, response):
                if isinstance(response, dict):
                    response["tag"] = g.tag
                return response

        self.server = app()
        self.server.add_middleware(Tag(), protocol="tcp")
        self.running = await serve(self.server, protocol="http")
        self.addCleanup(self.running.stop)
        ws = await RawWebSocket.open(self.running.http_port)
        self.addCleanup(ws.close)
        self.assertEqual((await ws.request("echo x"))["tag"], "websocket")
        self.assertEqual(seen, ["echo"])

    async def test_message_observers_still_fire(self):
        # onMessageEnd skips autobahn's "message" event only while nothing observes it
        await self.asyncSetUp()
        client_id = (await self.ws.request({"command": "echo"}))["client_id"]
        seen = []
        self.server.connections[client_id].on(
            "message", lambda payload, is_binary: seen.append((payload, is_binary)))
        self.assertEqual((await self.ws.request("echo watched"))["echo"], "watched")
        self.assertEqual(seen, [(b"echo watched", False)])

    async def test_autobahn_debug_logging_still_runs_when_on(self):
        # dataReceived skips autobahn's debug line only when its level is off
        await self.asyncSetUp()
        self.assertIs(WebSocketProtocol.log.debug, _LOG_OFF)  # txaio's no-op (level info)
        client_id = (await self.ws.request({"command": "echo"}))["client_id"]
        events = []
        proto = self.server.connections[client_id]
        proto.log = txaio.make_logger(level="debug")
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.assertEqual((await self.ws.request("echo loud"))["echo"], "loud")
        self.assertTrue(any("received {data_len} bytes" in (e.get("log_format") or "") for e in events))

    def test_the_autobahn_internals_the_shortcuts_follow(self):
        """``dataReceived`` and ``onMessageEnd`` repeat what autobahn's own do
        minus the unused extras: fail here when an autobahn upgrade changes
        what they rely on."""
        import inspect

        from autobahn.twisted.websocket import WebSocketServerProtocol as Base

        from pyliteflux.adapters.websocket import protocol as module

        self.assertIsNotNone(module._READ)
        self.assertIn("self._dataReceived(data)", inspect.getsource(Base.dataReceived))
        self.assertIn("self.onMessage(payload, isBinary)", inspect.getsource(Base._onMessage))
        end = inspect.getsource(Base.onMessageEnd)
        for name in ("self.failedByMe", "self.message_data", "self.message_is_binary",
                     "self.trackedTimings", "self._onMessage("):
            self.assertIn(name, end)

    async def test_a_reply_larger_than_the_message_limit_is_sent(self):
        await self.asyncSetUp(max_line_length=1024)
        reply = await self.ws.request("big 5000")
        self.assertEqual(len(reply["blob"]), 5000)


@per_engine
class HostileTests(TestCase):
    async def start(self, **config):
        self.server = app(**config)
        self.running = await serve(self.server, protocol="http")
        self.addCleanup(self.running.stop)
        return self.running.http_port

    async def test_oversized_message_closes_with_1009(self):
        port = await self.start(max_line_length=1000)
        ws = await RawWebSocket.open(port)
        self.assertEqual((await ws.request("echo " + "y" * 990))["echo"], "y" * 990)
        ws.send("echo " + "y" * 2000)
        self.assertEqual(await ws.closed, 1009)

    async def test_oversized_fragmented_message_closes_with_1009(self):
        port = await self.start(max_line_length=1000)
        ws = await RawWebSocket.open(port)
        for _ in range(5):
            ws.transport.write(frame(1 if _ == 0 else 0, b"z" * 300, fin=False))
        self.assertEqual(await ws.closed, 1009)

    async def test_invalid_utf8_closes_with_1007(self):
        port = await self.start()
        ws = await RawWebSocket.open(port)
        ws.transport.write(frame(1, b"echo \xff\xfe"))
        self.assertEqual(await ws.closed, 1007)

    async def test_binary_message_closes_with_1003(self):
        port = await self.start()
        ws = await RawWebSocket.open(port)
        ws.transport.write(frame(2, b"\x00\x01"))
        self.assertEqual(await ws.closed, 1003)

    async def test_no_compression_is_negotiated(self):
        port = await self.start()

        class Deflating(RawWebSocket):
            def connectionMade(self):
                self.transport.write(
                    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")

        ws = await Deflating.open(port)
        self.addCleanup(ws.close)
        self.assertNotIn(b"permessage-deflate", ws.response_headers.lower())
        self.assertEqual((await ws.request("echo plain"))["echo"], "plain")

    async def test_never_reading_client_is_disconnected_and_counted(self):
        port = await self.start(max_output_buffer=64 * 1024)
        ws = await RawWebSocket.open(port)
        await ws.request("join flood")
        ws.stop_reading()
        other = await RawWebSocket.open(port)
        self.addCleanup(other.close)
        blob = "b" * 16384
        for _ in range(2000):  # 32 MB at most: far past the socket buffers and the limit
            self.server.push_message(blob, topic="flood")
            if not self.server.hub.subscribers("flood"):
                break
            await task.deferLater(reactor, 0, lambda: None)
        self.assertEqual(self.server.hub.subscribers("flood"), set())
        self.assertGreaterEqual(self.server.hub.stats.dropped["slow_consumer"], 1)
        ws.close()
        self.assertEqual((await other.request("echo still here"))["echo"], "still here")

    async def test_peer_that_never_answers_pings_is_closed(self):
        port = await self.start(websocket_ping_interval=0.2)
        ws = await RawWebSocket.open(port, answer_pings=False)
        polite = await RawWebSocket.open(port)
        self.addCleanup(polite.close)
        timeout = reactor.callLater(5, ws.close)
        await ws.closed
        if timeout.active():
            timeout.cancel()
        self.assertGreaterEqual(ws.pings, 1)
        self.assertGreaterEqual(polite.pings, 1)
        self.assertEqual((await polite.request("echo alive"))["echo"], "alive")

    async def test_foreign_origin_is_refused_with_403(self):
        port = await self.start()
        ws = await RawWebSocket.connect(port, origin="http://evil.example")
        self.assertEqual(ws.status, 403)
        await ws.closed
        same = await RawWebSocket.open(port, origin=f"http://127.0.0.1:{port}")
        self.addCleanup(same.close)
        self.assertEqual((await same.request("echo ok"))["echo"], "ok")

    async def test_listed_origin_is_allowed(self):
        port = await self.start(websocket_origins=["https://app.example"])
        ws = await RawWebSocket.open(port, origin="https://app.example")
        self.addCleanup(ws.close)
        self.assertEqual((await ws.request("echo ok"))["echo"], "ok")

    async def test_thousand_clients_receive_one_broadcast(self):
        port = await self.start()
        clients = []
        for _batch in range(0, 1000, 40):  # in batches within the listen backlog (50)
            batch = await defer.gatherResults(
                [RawWebSocket.open(port) for _ in range(40)], consumeErrors=True)
            clients.extend(batch)
        for ws in clients:
            self.addCleanup(ws.close)
        await task.deferLater(reactor, 0.05, lambda: None)  # every handshake's onOpen ran
        self.assertEqual(self.server.push_message({"to": "all"}), 1000)
        got = await defer.gatherResults([ws.next() for ws in clients])
        self.assertEqual(got, [{"type": "push", "data": {"to": "all"}}] * 1000)


@per_engine
class OriginRuleTests(TestCase):
    def test_rule(self):
        self.assertTrue(origin_allowed(None, "h:1", []))
        self.assertTrue(origin_allowed("http://h:1", "h:1", []))
        self.assertTrue(origin_allowed("HTTP://H:1/", "h:1", []))
        self.assertTrue(origin_allowed("http://h", "h:80", []))
        self.assertTrue(origin_allowed("https://h:443", "h", []))
        self.assertFalse(origin_allowed("http://h:2", "h:1", []))
        self.assertFalse(origin_allowed("http://other:1", "h:1", []))
        self.assertFalse(origin_allowed("null", "h:1", []))
        self.assertTrue(origin_allowed("null", "h:1", ["null"]))
        self.assertTrue(origin_allowed("http://x.example", "h:1", ["*"]))
        self.assertTrue(origin_allowed("http://x.example", "h:1", ["http://x.example/"]))
        self.assertFalse(origin_allowed("http://h:1@evil", "h:1", []))
        self.assertFalse(origin_allowed("http://evil/h:1", "h:1", []))


