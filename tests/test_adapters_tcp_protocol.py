"""The TCP line protocol (SPEC §9): formats, errors, ordering, framing, registry, push."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import HTTPJSONResponse, Middleware, Router, Server, g
from pyliteflux.core.codec import parse_xml
from pyliteflux.testing import TestClient, serve
from tests.tcp_client import LineClient, send_then_eof


def make(**config):
    server = Server(router=Router(), info=False, **config)
    route = server.route

    @route("subscribe", protocol="tcp")
    def subscribe(request):
        return {"message": "subscribed", "client_id": request.client_id,
                "data": request.data, "type": request.data_type}

    @route("echo", protocol="tcp")
    def echo(request):
        return request.data

    @route("boom", protocol="tcp")
    def boom(request):
        raise RuntimeError("handler broke")

    route("object", protocol="tcp")(lambda request: {"v": object()})
    route("nan", protocol="tcp")(lambda request: {"v": float("nan")})
    route("numbers", protocol="tcp")(lambda request: {"i": 3, "f": 0.1, "b": True})

    @route("later", protocol="tcp")
    def later(request):
        request.connection.later = defer.Deferred()
        return request.connection.later

    return server, TestClient(server)


class FormatTests(TestCase):
    def setUp(self):
        self.server, self.client = make(tcp_keep_alive=True)
        self.conn = self.client.connect()

    async def test_json_with_id_echoed(self):
        r = await self.conn.send({"command": "subscribe", "data": {"room": "a"}, "id": 7})
        self.assertEqual(r["id"], 7)
        self.assertEqual(r["data"], {"room": "a"})
        self.assertEqual(r["type"], "json")
        self.assertEqual(r["client_id"], self.conn.client_id)

    async def test_json_without_id(self):
        r = await self.conn.send({"command": "subscribe"})
        self.assertNotIn("id", r)

    async def test_non_dict_result_with_id_is_wrapped(self):
        r = await self.conn.send({"command": "echo", "data": [1, 2], "id": "x"})
        self.assertEqual(r, {"id": "x", "result": [1, 2]})

    async def test_xml(self):
        r = await self.conn.send('<request command="subscribe" id="7"><room>a</room></request>')
        self.assertEqual(r["tag"], "response")
        self.assertEqual(r["attrib"], {"id": "7"})
        self.assertEqual(r["data"]["data"], {"room": "a"})
        self.assertEqual(r["data"]["type"], "xml")

    async def test_xml_request_keeps_element(self):
        seen = []
        self.server.route("el", protocol="tcp")(lambda r: seen.append(r.element.tag) or "ok")
        await self.conn.send('<request command="el"><x/></request>')
        self.assertEqual(seen, ["request"])

    async def test_raw(self):
        r = await self.conn.send("subscribe rest of the line")
        self.assertEqual(json.loads(json.dumps(r))["data"], "rest of the line")
        r = await self.conn.send("echo plain text")
        self.assertEqual(r, "plain text")

    async def test_crlf_accepted(self):
        r = await self.conn.send(b'{"command": "echo", "data": 1}\r\n')
        self.assertEqual(r, 1)

    async def test_headers_in_json_reach_middleware(self):
        class Auth(Middleware):
            def process_request(self, request):
                if not request.headers.get("Authorization"):
                    return {"error": "Unauthorized"}
                g.user = "u"

        self.server.add_middleware(Auth())
        r = await self.conn.send({"command": "echo", "data": 1})
        self.assertEqual(r, {"error": "Unauthorized"})
        r = await self.conn.send({"command": "echo", "data": 1,
                                  "headers": {"authorization": "t"}})
        self.assertEqual(r, 1)


class ErrorTests(TestCase):
    def setUp(self):
        self.server, self.client = make(tcp_keep_alive=True)
        self.conn = self.client.connect()

    async def _still_usable(self):
        self.assertEqual(await self.conn.send({"command": "echo", "data": "ok"}), "ok")

    async def test_unknown_command_in_each_format(self):
        r = await self.conn.send({"command": "nope", "id": 1})
        self.assertEqual(r, {"error": "Command not found", "command": "nope", "id": 1})
        r = await self.conn.send("nope x")
        self.assertEqual(r, {"error": "Command not found", "command": "nope"})
        r = await self.conn.send('<request command="nope"/>')
        self.assertEqual(r["data"], {"error": "Command not found", "command": "nope"})
        await self._still_usable()

    async def test_broken_json_and_xml_are_errors_not_raw(self):
        for line in ("{not json", "<request command='x'", "<<<", "{}", "[1]", '{"command": 5}',
                     '{"command": ""}', "<other/>"):
            r = await self.conn.send(line)
            self.assertIn("error", r if isinstance(r, dict) and "error" in r else r["data"], line)
        await self._still_usable()

    async def test_xml_entities_and_dtd_rejected(self):
        bomb = ('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                '<request command="echo">&b;</request>')
        r = await self.conn.send(bomb)
        self.assertEqual(r["data"]["error"], "Invalid XML")
        ext = ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
               '<request command="echo">&e;</request>')
        r = await self.conn.send(ext)
        self.assertEqual(r["data"]["error"], "Invalid XML")
        await self._still_usable()

    async def test_deeply_nested_xml_is_an_error_line(self):
        deep = '<request command="echo" id="1">' + "<a>" * 1000 + "</a>" * 1000 + "</request>"
        r = await self.conn.send(deep)
        self.assertEqual(r["data"]["error"], "Invalid XML")
        self.assertIn("nested too deeply", r["data"]["detail"])
        ok = '<request command="echo">' + "<a>" * 150 + "x" + "</a>" * 150 + "</request>"
        r = await self.conn.send(ok)
        self.assertNotIn("error", r["data"])
        await self._still_usable()

    async def test_unrenderable_results_are_a_500_in_every_format(self):
        for command in ("object", "nan"):
            r = await self.conn.send({"command": command, "id": 1})
            self.assertEqual(r, {"error": "Internal Server Error", "id": 1})
            r = await self.conn.send(f'<request command="{command}" id="1"/>')
            self.assertEqual(r["data"], {"error": "Internal Server Error"}, command)
        self.assertEqual(len(self.flushLoggedErrors(TypeError, ValueError)), 4)
        r = await self.conn.send('<request command="numbers"/>')
        self.assertEqual(r["data"], {"i": "3", "f": "0.1", "b": "true"})
        await self._still_usable()

    async def test_json_after_a_byte_order_mark(self):
        r = await self.conn.send(b'\xef\xbb\xbf{"command": "echo", "data": "bom", "id": 2}')
        self.assertEqual(r, {"id": 2, "result": "bom"})

    async def test_byte_order_marks_alone_or_repeated(self):
        self.conn.send_bytes(b"\xef\xbb\xbf\n\xef\xbb\xbf  \r\n")  # blank lines: no reply
        r = await self.conn.send(b"\xef\xbb\xbf" * 2000 + b'{"command": "echo"}')
        self.assertEqual(r["error"], "Command not found")  # only one mark is skipped
        await self._still_usable()
        self.assertEqual(len(self.conn.replies), 2)

    async def test_xml_numbers_and_custom_encoders(self):
        import datetime
        import enum

        class Level(enum.IntEnum):
            HIGH = 3

        class Ratio(float):
            pass

        class DateEncoder(json.JSONEncoder):
            def default(self, obj):
                if isinstance(obj, datetime.date):
                    return obj.isoformat()
                return super().default(obj)

        route = self.server.route
        route("levels", protocol="tcp")(lambda r: {"level": Level.HIGH, "ratio": Ratio(0.5)})
        route("dated", protocol="tcp")(lambda r: HTTPJSONResponse(
            {"on": datetime.date(2026, 11, 24)}, json_encoder=DateEncoder))
        r = await self.conn.send('<request command="levels"/>')
        self.assertEqual(r["data"], {"level": "3", "ratio": "0.5"})
        r = await self.conn.send('<request command="dated"/>')
        self.assertEqual(r["data"], {"on": "2026-11-24"})
        r = await self.conn.send({"command": "dated"})
        self.assertEqual(r, {"on": "2026-11-24"})

    async def test_invalid_utf8(self):
        r = await self.conn.send(b'{"command": "echo", "data": "\xff"}')
        self.assertEqual(r["error"], "Invalid UTF-8")
        await self._still_usable()

    async def test_empty_lines_ignored(self):
        self.conn.send_bytes(b"\n\r\n   \n")
        self.assertEqual(self.conn.replies, [])
        await self._still_usable()

    async def test_handler_exception_is_error_line(self):
        r = await self.conn.send({"command": "boom", "id": 3})
        self.assertEqual(r, {"error": "Internal Server Error", "id": 3})
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        await self._still_usable()

    def test_over_long_line_gets_error_then_close(self):
        self.server.config.max_line_length = 100
        conn = self.client.connect()
        conn.send_bytes(b"x" * 60)
        self.assertFalse(conn.closed)
        conn.send_bytes(b"x" * 60)
        self.assertTrue(conn.closed)
        self.assertEqual(conn.replies[-1], {"error": "Line too long", "limit": 100})

    def test_over_long_line_in_one_chunk(self):
        self.server.config.max_line_length = 10
        conn = self.client.connect()
        conn.send_bytes(b"echo " + b"y" * 50 + b"\n")
        self.assertTrue(conn.closed)
        self.assertEqual(conn.replies, [{"error": "Line too long", "limit": 10}])


class OrderingTests(TestCase):
    async def test_replies_in_request_order_when_later_finishes_first(self):
        server, client = make(tcp_keep_alive=True)
        gates = {}

        @server.route("wait", protocol="tcp")
        def wait(request):
            gates[request.data] = d = defer.Deferred()
            return d

        conn = client.connect()
        first = conn.send({"command": "wait", "data": "a"})
        second = conn.send({"command": "wait", "data": "b"})
        third = conn.send({"command": "echo", "data": "c"})
        gates["b"].callback("B")
        self.assertEqual(conn.replies, [])
        gates["a"].callback("A")
        self.assertEqual(await defer.gatherResults([first, second, third]), ["A", "B", "c"])

    async def test_async_handlers(self):
        server, client = make(tcp_keep_alive=True)

        @server.route("coro", protocol="tcp")
        async def coro(request):
            await task.deferLater(reactor, 0, lambda: None)
            return {"coro": request.data}

        conn = client.connect()
        self.assertEqual(await conn.send({"command": "coro", "data": 1}), {"coro": 1})


def _stream():
    return (b'{"command": "echo", "data": "a\\nb"}\n'
            b'<request command="echo" id="2"><k>v</k></request>\r\n'
            b"echo raw words\n"
            b"\n"
            b"{broken\n"
            b"nope\n"
            b'{"command": "echo", "data": [1, {"x": null}], "id": 9}\n')


def _replies_for(chunks):
    server, client = make(tcp_keep_alive=True)
    conn = client.connect()
    for chunk in chunks:
        conn.send_bytes(chunk)
    return conn.lines


class FramingTests(SynchronousTestCase):
    expected = None

    def setUp(self):
        if FramingTests.expected is None:
            FramingTests.expected = _replies_for([_stream()])

    def test_whole_stream(self):
        self.assertEqual(len(self.expected), 6)

    def test_byte_by_byte(self):
        data = _stream()
        self.assertEqual(_replies_for([data[i:i + 1] for i in range(len(data))]), self.expected)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=len(_stream())), max_size=20))
    def test_any_split_gives_same_replies(self, cuts):
        data = _stream()
        points = sorted(set(cuts))
        chunks, prev = [], 0
        for p in points:
            chunks.append(data[prev:p])
            prev = p
        chunks.append(data[prev:])
        self.assertEqual(_replies_for(chunks), self.expected)

    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=300))
    def test_any_bytes_give_lines_never_exceptions(self, data):
        server, client = make(tcp_keep_alive=True)
        server.config.max_line_length = 200
        conn = client.connect()
        conn.send_bytes(data)
        for line in conn.lines:
            self.assertNotIn(b"\n", line)

    def test_output_is_one_line_even_with_newlines(self):
        server, client = make(tcp_keep_alive=True)
        conn = client.connect()
        for line in ('{"command": "echo", "data": "a\\nb\\rc\\u2028d"}',
                     '<request command="echo"><v>a&#10;b</v></request>',
                     "echo x"):
            conn.send(line)
        server.route("nl", protocol="tcp")(lambda r: "multi\nline\rtext\u2028")
        conn.send("nl")
        self.assertEqual(len(conn.lines), 4)
        self.assertEqual(conn.replies[0], "a\nb\rc\u2028d")
        self.assertEqual(conn.replies[1]["data"], {"v": "a\nb"})
        self.assertEqual(conn.lines[3], b"multi\\nline\\rtext\\u2028")
        pushed = server.push_message("p\nq\u2028")
        self.assertEqual(pushed, 1)
        self.assertEqual(conn.pushes, [{"type": "push", "data": "p\nq\u2028"}])
        self.assertEqual(len(conn.lines), 5)


class KeepAliveTests(TestCase):
    async def test_keep_alive_off_closes_after_first_reply_and_never_registers(self):
        server, client = make(tcp_keep_alive=False)
        conn = client.connect()
        self.assertEqual(dict(server.connections), {})
        await conn.send({"command": "echo", "data": 1})
        self.assertTrue(conn.closed)
        self.assertEqual(dict(server.connections), {})

    async def test_keep_alive_on_registers_and_unregisters(self):
        server, client = make(tcp_keep_alive=True)
        a, b = client.connect(), client.connect()
        self.assertEqual(set(server._active_connections), {a.client_id, b.client_id})
        self.assertIs(server._active_connections, server.connections)
        a.close()
        self.assertEqual(set(server.connections), {b.client_id})


class PushTests(TestCase):
    def setUp(self):
        self.server, self.client = make(tcp_keep_alive=True)

    def test_push_one_and_all(self):
        a, b = self.client.connect(), self.client.connect()
        self.assertEqual(self.server.push_message({"n": 1}, a.client_id), 1)
        self.assertEqual(self.server.push_message("all"), 2)
        self.assertEqual(a.pushes, [{"type": "push", "data": {"n": 1}},
                                    {"type": "push", "data": "all"}])
        self.assertEqual(b.pushes, [{"type": "push", "data": "all"}])

    def test_unknown_client_reported_not_raised(self):
        self.assertEqual(self.server.push_message("x", "1.2.3.4:5"), 0)

    def test_xml_clients_get_xml_push(self):
        conn = self.client.connect()
        conn.send('<request command="echo"/>')
        self.server.push_message({"m": "hi"})
        self.assertEqual(conn.pushes, [{"tag": "push", "attrib": {}, "data": {"m": "hi"}}])

    def test_broadcast_while_clients_disconnect(self):
        killer = _KillingTarget()  # registered first: it is pushed to first
        self.server.hub.register(killer)
        conns = [self.client.connect() for _ in range(5)]
        killer.victim = conns[3]
        reached = self.server.push_message("x")
        self.assertEqual(reached, 5)  # the killer and the four that stayed
        self.assertNotIn(conns[3].client_id, self.server.connections)
        self.assertEqual([len(c.pushes) for c in conns], [1, 1, 1, 0, 1])

    def test_slow_consumer_is_disconnected(self):
        self.server.config.max_output_buffer = 1000
        slow, fast = self.client.connect(), self.client.connect()
        slow.protocol.pauseProducing()  # what the transport does when its buffer fills
        self.assertTrue(slow.transport.producerState == "paused")  # reading paused too
        for _ in range(20):
            self.server.push_message("x" * 100)
        self.assertTrue(slow.closed)
        self.assertNotIn(slow.client_id, self.server.connections)
        self.assertEqual(len(fast.pushes), 20)
        self.assertEqual(self.server.hub.stats.dropped["slow_consumer"], 1)

    def test_connection_cap(self):
        self.server.config.max_tcp_connections = 2
        self.client.connect(), self.client.connect()
        third = self.client.connect()
        self.assertTrue(third.closed)
        self.assertEqual(third.replies, [{"error": "Too many connections"}])


class IdleTimeoutTests(SynchronousTestCase):
    def test_idle_connection_closed(self):
        server, client = make(tcp_keep_alive=True, tcp_idle_timeout=30)
        clock = task.Clock()
        conn = client.connect()
        conn.protocol.setTimeout(None)  # drop the timer armed on the real reactor
        conn.protocol.callLater = clock.callLater
        conn.protocol.setTimeout(30)
        clock.advance(20)
        conn.send_bytes(b"echo hi\n")
        clock.advance(20)
        self.assertFalse(conn.closed)
        clock.advance(11)
        self.assertTrue(conn.closed)
        self.assertEqual(conn.replies[-1], {"error": "Idle timeout"})

    def _connect(self, timeout):
        server, client = make(tcp_keep_alive=True, tcp_idle_timeout=timeout)
        clock = task.Clock()
        conn = client.connect()
        conn.protocol.setTimeout(None)  # drop the timer armed on the real reactor
        conn.protocol.callLater = clock.callLater
        conn.protocol.setTimeout(timeout)
        return conn, clock

    def test_a_command_in_flight_is_not_idle(self):
        conn, clock = self._connect(1)
        conn.send_bytes(b'{"command": "later", "id": 1}\n')
        clock.advance(5)  # the handler takes 5 s; the idle timeout is 1 s
        self.assertFalse(conn.closed)
        conn.protocol.later.callback({"done": True})
        self.assertEqual(conn.replies[-1], {"done": True, "id": 1})
        clock.advance(1.5)  # now idle
        self.assertTrue(conn.closed)
        self.assertEqual(conn.replies[-1], {"error": "Idle timeout"})

    def test_idle_line_in_the_clients_format(self):
        conn, clock = self._connect(1)
        conn.send_bytes(b'<request command="echo">x</request>\n')
        clock.advance(1.5)
        self.assertTrue(conn.closed)
        self.assertEqual(conn.replies[-1]["data"], {"error": "Idle timeout"})


class LoopbackTests(TestCase):
    """Real sockets: push from a thread, broadcast to many, slow consumer."""

    async def _start(self, **config):
        server, _ = make(tcp_keep_alive=True, **config)
        running = await serve(server, protocol="tcp")
        self.addCleanup(running.stop)
        return server, running

    async def _clients(self, port, n):
        clients = []
        for _ in range(n):
            c = await LineClient.connect(port)
            self.addCleanup(c.close)
            clients.append(c)
        for c in clients:  # a round trip each: registered for sure
            await c.request({"command": "echo", "data": 0})
        return clients

    async def test_push_from_a_thread(self):
        from twisted.internet.threads import deferToThread

        server, running = await self._start()
        (c,) = await self._clients(running.tcp_port, 1)
        future = await deferToThread(server.push_message, {"from": "thread"})
        self.assertEqual(await c.next_line(), {"type": "push", "data": {"from": "thread"}})
        self.assertEqual(future.result(timeout=5), 1)

    async def test_broadcast_to_many(self):
        server, running = await self._start()
        clients = await self._clients(running.tcp_port, 50)
        self.assertEqual(server.push_message("hello all"), 50)
        got = await defer.gatherResults([c.next_line() for c in clients])
        self.assertEqual(got, [{"type": "push", "data": "hello all"}] * 50)

    async def test_client_that_does_not_read_is_disconnected(self):
        server, running = await self._start(max_output_buffer=256 * 1024)
        slow, fast = await self._clients(running.tcp_port, 2)
        slow_id = (await slow.request({"command": "subscribe"}))["client_id"]
        slow.transport.pauseProducing()  # stop reading: kernel buffers fill up
        chunk = "z" * 65536
        for _ in range(1000):  # at most 64 MB, far beyond socket buffers + limit
            server.push_message(chunk, slow_id)
            if slow_id not in server.connections:
                break
            await task.deferLater(reactor, 0, lambda: None)
        self.assertNotIn(slow_id, server.connections)
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(await fast.request({"command": "echo", "data": 1}), 1)
        self.assertEqual(server.hub.stats.dropped["slow_consumer"], 1)

    async def test_keep_alive_off_over_a_socket(self):
        server, _ = make(tcp_keep_alive=False)
        running = await serve(server, protocol="tcp")
        self.addCleanup(running.stop)
        c = await LineClient.connect(running.tcp_port)
        self.assertEqual(await c.request({"command": "echo", "data": 5}), 5)
        await c.closed
        self.assertEqual(dict(server.connections), {})


class CodecTests(SynchronousTestCase):
    def test_xml_parser_forbids_dtd(self):
        from pyliteflux.core.codec import DecodeError

        self.assertRaises(DecodeError, parse_xml, '<!DOCTYPE x><x/>')


class HalfCloseTests(TestCase):
    """`printf 'cmd\\n' | nc host port`: lines, then EOF, and the replies still come."""

    async def test_replies_sent_after_client_half_closes(self):
        from twisted.internet.threads import deferToThread

        server, _ = make(tcp_keep_alive=True)

        @server.route("late", protocol="tcp")
        def late(request):
            return task.deferLater(reactor, 0.05, lambda: "late reply")

        running = await serve(server, protocol="tcp")
        self.addCleanup(running.stop)

        data = await deferToThread(
            send_then_eof, running.tcp_port,
            b'{"command": "echo", "data": 1}\nlate\nsubscribe no-newline')
        lines = data.decode().splitlines()
        self.assertEqual(lines[0], "1")
        self.assertEqual(lines[1], "late reply")
        self.assertEqual(json.loads(lines[2])["data"], "no-newline")
        self.assertEqual(len(lines), 3)


class WriteThroughTests(TestCase):
    """Lines go straight to the socket when nothing is queued; the rest is buffered."""

    async def test_large_push_to_a_paused_reader_arrives_intact_and_in_order(self):
        server, _ = make(tcp_keep_alive=True)
        running = await serve(server, protocol="tcp")
        self.addCleanup(running.stop)
        client = await LineClient.connect(running.tcp_port)
        self.addCleanup(client.close)
        await client.request({"command": "echo", "data": 0})
        (conn,) = server.connections.values()
        self.assertTrue(conn._direct)
        client.transport.pauseProducing()
        big = "b" * (3 * 1024 * 1024)  # more than the socket buffers take at once
        server.push_message(big)
        server.push_message("after")
        self.assertTrue(conn.transport._tempDataLen or conn.transport.dataBuffer)  # partly queued
        client.transport.resumeProducing()
        self.assertEqual(await client.next_line(), {"type": "push", "data": big})
        self.assertEqual(await client.next_line(), {"type": "push", "data": "after"})


class _KillingTarget:
    """A push target that closes another client while it is pushed to."""

    client_id = "killer"
    transport_name = "test"
    push_format = "json-line"
    topics = frozenset()
    victim = None

    def send_push(self, payload):
        self.victim.close()
        return True
