"""Tests for ``pyliteflux.streaming``: StreamResponse over real sockets, and SSE.

Every server listens on 127.0.0.1, port 0, with its own ``Router``. Nothing
sleeps: tests wait on Deferreds fired by the generators and clients they
control. Runs under ``trial tests.test_core_streaming`` and ``pytest``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, List, Optional

import treq
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor, task
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from pyliteflux import Middleware, Server, StreamResponse, streaming
from pyliteflux.core import streaming as core_streaming
from pyliteflux.core.routing import Router
from pyliteflux.streaming import SSEStream, in_thread, sse_event, sse_response
from tests.engines import per_engine


async def gather(*ds: Deferred) -> List[Any]:
    return await gatherResults(list(ds))


def turns(n: int) -> Deferred:
    """Let the reactor run ``n`` turns (no wall-clock waiting)."""
    d = succeed(None)
    for _ in range(n):
        d.addCallback(lambda _: task.deferLater(reactor, 0, lambda: None))
    return d


def wait_until(predicate: Callable[[], bool], limit: int = 2000) -> Deferred:
    """Fires once ``predicate()`` holds, checking once per reactor turn."""

    async def loop() -> None:
        for _ in range(limit):
            if predicate():
                return
            await task.deferLater(reactor, 0, lambda: None)
        raise AssertionError("condition not reached")

    return Deferred.fromCoroutine(loop())


class RawClient(Protocol):
    """A bare HTTP client: sends one request, records what arrives."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = b""
        self.received = 0
        self.keep = True
        self.lost: Deferred = Deferred()
        self._waiters: List[Any] = []

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        if self.keep:
            self.data += data
        for waiter in list(self._waiters):
            predicate, d = waiter
            if predicate(self):
                self._waiters.remove(waiter)
                d.callback(self)

    def wait_for(self, predicate: Callable[[RawClient], bool]) -> Deferred:
        d: Deferred = Deferred()
        if predicate(self):
            d.callback(self)
        else:
            self._waiters.append((predicate, d))
        return d

    def connectionLost(self, reason: Any) -> None:
        self.lost.callback(None)


class ErrorWatcher:
    """Collects log events at warning level or above."""

    def __init__(self, case: unittest.TestCase) -> None:
        self.events: List[Dict[str, Any]] = []
        globalLogPublisher.addObserver(self)
        case.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: Dict[str, Any]) -> None:
        level = event.get("log_level")
        if level is not None and level >= LogLevel.warn:
            self.events.append(event)


class StreamingTestCase(unittest.TestCase):
    async def serve(self, server: Server) -> int:
        listening = await server.listen("http")
        self.addCleanup(self._stop, server)
        return listening.http_port

    async def _stop(self, server: Server) -> None:
        await server._stop_service()
        # Server-side connections close a turn after their clients do.
        await wait_until(lambda: not [s for s in reactor.getReaders() + reactor.getWriters()
                                      if type(s).__name__ == "Server"
                                      and getattr(s, "connected", False)])

    def make_server(self) -> Server:
        server = Server(router=Router(), http_port=0, info=False)
        return server

    def client(self) -> treq.client.HTTPClient:
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        return treq.client.HTTPClient(Agent(reactor, pool=pool))

    async def raw(self, port: int, request: bytes) -> RawClient:
        proto = RawClient(request)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), proto)
        self.addCleanup(self._close_raw, proto)
        return proto

    @staticmethod
    async def _close_raw(proto: RawClient) -> None:
        if not proto.lost.called:
            proto.transport.abortConnection()
            await proto.lost


@per_engine
class StreamResponseTests(StreamingTestCase):
    async def test_first_chunk_arrives_before_the_generator_finishes(self) -> None:
        server = self.make_server()
        gate: Deferred = Deferred()
        state = {"finished": False}

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            def gen() -> Any:
                yield "first;"
                yield gate
                state["finished"] = True

            return StreamResponse(gen(), content_type="text/plain")

        port = await self.serve(server)
        response = await self.client().get(f"http://127.0.0.1:{port}/s", unbuffered=True)
        self.assertEqual(response.code, 200)
        chunks: List[bytes] = []
        first: Deferred = Deferred()

        def collect(data: bytes) -> None:
            chunks.append(data)
            if not first.called:
                first.callback(data)

        done = treq.collect(response, collect)
        self.assertEqual(await first, b"first;")
        self.assertFalse(state["finished"])
        self.assertFalse(done.called)
        gate.callback("second")
        await done
        self.assertTrue(state["finished"])
        self.assertEqual(b"".join(chunks), b"first;second")

    async def test_chunked_encoding_and_utf8_str_chunks(self) -> None:
        server = self.make_server()

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            return StreamResponse(iter(["h\u00e9", b"", b"llo", bytearray(b"!")]),
                                  content_type="text/plain; charset=utf-8",
                                  headers={"Connection": "keep-alive", "X-A": "1"})

        port = await self.serve(server)
        proto = await self.raw(port, b"GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await proto.lost
        head, _, body = proto.data.partition(b"\r\n\r\n")
        self.assertIn(b"HTTP/1.1 200", head)
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertIn(b"X-A: 1", head)
        self.assertNotIn(b"Content-Length", head)
        # one HTTP chunk per produced chunk; the empty chunk is skipped
        self.assertEqual(body, b"3\r\nh\xc3\xa9\r\n3\r\nllo\r\n1\r\n!\r\n0\r\n\r\n")

    async def test_async_generator(self) -> None:
        server = self.make_server()
        closed: List[str] = []

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            async def gen() -> Any:
                try:
                    for i in range(3):
                        await task.deferLater(reactor, 0, lambda: None)
                        yield f"{i}\n"
                finally:
                    closed.append("finally")

            return StreamResponse(gen(), content_type="application/x-ndjson")

        port = await self.serve(server)
        response = await self.client().get(f"http://127.0.0.1:{port}/s")
        self.assertEqual(await response.content(), b"0\n1\n2\n")
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["application/x-ndjson"])
        self.assertEqual(closed, ["finally"])

    async def test_async_handler_returning_a_stream(self) -> None:
        server = self.make_server()

        @server.route("/s")
        async def s(request: Any) -> StreamResponse:
            await task.deferLater(reactor, 0, lambda: None)
            return StreamResponse(iter([b"a", b"b"]))

        port = await self.serve(server)
        response = await self.client().get(f"http://127.0.0.1:{port}/s")
        self.assertEqual(await response.content(), b"ab")

    async def test_iterator_yielding_deferreds_and_coroutines(self) -> None:
        server = self.make_server()

        class Chunks:
            """Not a generator: a plain iterator whose items are Deferreds."""

            def __init__(self) -> None:
                self.items = [succeed(b"a"), task.deferLater(reactor, 0, lambda: "b"), b"c"]

            def __iter__(self) -> Chunks:
                return self

            def __next__(self) -> Any:
                if not self.items:
                    raise StopIteration
                return self.items.pop(0)

        async def later(value: str) -> str:
            await task.deferLater(reactor, 0, lambda: None)
            return value

        @server.route("/d")
        def d(request: Any) -> StreamResponse:
            return StreamResponse(Chunks())

        @server.route("/c")
        def c(request: Any) -> StreamResponse:
            return StreamResponse(later(x) for x in "xyz")

        port = await self.serve(server)
        http = self.client()
        self.assertEqual(await (await http.get(f"http://127.0.0.1:{port}/d")).content(), b"abc")
        self.assertEqual(await (await http.get(f"http://127.0.0.1:{port}/c")).content(), b"xyz")

    async def test_blocking_iterator_in_thread(self) -> None:
        server = self.make_server()
        closed: List[bool] = []

        def reader() -> Any:
            try:
                for i in range(50):
                    yield b"%d," % i
            finally:
                closed.append(True)

        @server.route("/t")
        def t(request: Any) -> StreamResponse:
            return StreamResponse(in_thread(reader()))

        port = await self.serve(server)
        body = await (await self.client().get(f"http://127.0.0.1:{port}/t")).content()
        self.assertEqual(body, b"".join(b"%d," % i for i in range(50)))
        await wait_until(lambda: bool(closed))

    async def test_disconnect_closes_a_generator_waiting_on_a_deferred(self) -> None:
        server = self.make_server()
        watcher = ErrorWatcher(self)
        pending: Deferred = Deferred()
        finally_ran: Deferred = Deferred()

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            def gen() -> Any:
                try:
                    yield b"hello"
                    yield pending  # never fires on its own
                    yield b"never"
                finally:
                    finally_ran.callback(None)

            return StreamResponse(gen())

        port = await self.serve(server)
        proto = await self.raw(port, b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        await proto.wait_for(lambda p: b"hello" in p.data)
        proto.transport.abortConnection()
        await finally_ran
        self.assertTrue(pending.called)  # cancelled
        await turns(3)
        self.assertEqual(watcher.events, [])

    async def test_disconnect_while_async_generator_step_is_in_flight(self) -> None:
        server = self.make_server()
        watcher = ErrorWatcher(self)
        awaited: Deferred = Deferred()
        finally_ran: Deferred = Deferred()

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            async def gen() -> Any:
                try:
                    yield b"hello"
                    await awaited  # __anext__ is in flight here when the client leaves
                    yield b"never"
                finally:
                    finally_ran.callback(None)

            return StreamResponse(gen())

        port = await self.serve(server)
        proto = await self.raw(port, b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        await proto.wait_for(lambda p: b"hello" in p.data)
        proto.transport.abortConnection()
        await finally_ran
        await turns(3)
        self.assertEqual(watcher.events, [])  # no RuntimeError from aclose()

    async def test_slow_consumer_pauses_the_producer(self) -> None:
        server = self.make_server()
        chunk = b"x" * 65536
        state = {"produced": 0, "closed": False, "paused": 0, "resumed": 0}
        first_pause: Deferred = Deferred()
        more: Dict[str, Any] = {}

        real_pause = streaming.StreamProducer.pauseProducing
        real_resume = streaming.StreamProducer.resumeProducing

        def pause(producer: Any) -> None:
            state["paused"] += 1
            real_pause(producer)
            if not first_pause.called:
                first_pause.callback(None)

        def resume(producer: Any) -> None:
            state["resumed"] += 1
            real_resume(producer)

        self.patch(streaming.StreamProducer, "pauseProducing", pause)
        self.patch(streaming.StreamProducer, "resumeProducing", resume)

        @server.route("/big")
        def big(request: Any) -> StreamResponse:
            def gen() -> Any:
                try:
                    while True:  # endless: only backpressure stops it
                        state["produced"] += 1
                        target = more.get("target")
                        if target is not None and state["produced"] >= target:
                            more.pop("target")
                            more["reached"].callback(None)
                        yield chunk
                finally:
                    state["closed"] = True

            return StreamResponse(gen())

        port = await self.serve(server)
        proto = await self.raw(port, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        proto.keep = False
        await proto.wait_for(lambda p: p.received > 0)
        proto.transport.pauseProducing()  # stop reading from the socket
        await first_pause
        # 300 turns at 16 chunks of 64 KiB would be ~300 MB without backpressure;
        # with it, only what the kernel's socket buffers hold gets produced.
        await turns(300)
        produced = state["produced"]
        await turns(50)
        self.assertEqual(state["produced"], produced)  # not producing while not read
        self.assertLess(produced * len(chunk), 48 * 2**20)
        self.assertGreaterEqual(state["paused"], state["resumed"])
        # reading again resumes the stream
        more["target"] = produced + 200
        more["reached"] = Deferred()
        proto.transport.resumeProducing()
        await more["reached"]
        self.assertGreater(state["resumed"], 0)
        proto.transport.abortConnection()
        await wait_until(lambda: state["closed"])

    async def test_a_blocking_step_is_reported_once(self) -> None:
        server = self.make_server()
        watcher = ErrorWatcher(self)
        self.patch(streaming.StreamProducer, "slow_step_warning", -1.0)  # every step is "slow"
        self.patch(core_streaming, "_warned_blocking", set())

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            def blocking() -> Any:
                yield b"a"
                yield b"b"

            return StreamResponse(blocking())

        port = await self.serve(server)
        http = self.client()
        for _ in range(2):
            self.assertEqual(await (await http.get(f"http://127.0.0.1:{port}/s")).content(), b"ab")
        self.assertEqual(len(watcher.events), 1)
        self.assertIn("in_thread", watcher.events[0]["log_format"])

    async def test_generator_runs_in_the_request_context(self) -> None:
        # The adapter runs the stream in ``request.context`` when the pipeline
        # records it there; simulate that here to check the streaming side.
        from pyliteflux import g
        from pyliteflux.core.pipeline import Pipeline

        real_start = Pipeline._start

        def start(pipeline: Any, request: Any, ctx: Any) -> Any:
            request.context = ctx
            return real_start(pipeline, request, ctx)

        self.patch(Pipeline, "_start", start)
        server = self.make_server()

        @server.route("/sync")
        def sync(request: Any) -> StreamResponse:
            g.user = request.query_params["user"]

            def gen() -> Any:
                yield "hello "
                yield task.deferLater(reactor, 0, lambda: None)
                yield g.user

            return StreamResponse(gen())

        @server.route("/async")
        def async_(request: Any) -> StreamResponse:
            g.user = request.query_params["user"]

            async def agen() -> Any:
                await task.deferLater(reactor, 0, lambda: None)
                yield f"bye {g.user}"

            return StreamResponse(agen())

        port = await self.serve(server)
        http = self.client()
        url = f"http://127.0.0.1:{port}"
        responses = await gather(*(http.get(f"{url}/{kind}?user={user}")
                                   for kind in ("sync", "async") for user in ("ann", "bob")))
        bodies = [await r.content() for r in responses]
        self.assertEqual(bodies, [b"hello ann", b"hello bob", b"bye ann", b"bye bob"])

    async def test_error_before_first_chunk_is_a_500(self) -> None:
        server = self.make_server()

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            def gen() -> Any:
                raise ZeroDivisionError("boom")
                yield b"never"

            return StreamResponse(gen())

        port = await self.serve(server)
        response = await self.client().get(f"http://127.0.0.1:{port}/s")
        self.assertEqual(response.code, 500)
        self.assertEqual(await response.json(), {"error": "Internal Server Error"})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    async def test_a_chunk_of_the_wrong_type_is_an_error(self) -> None:
        server = self.make_server()

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            return StreamResponse(iter([None, 42]))  # None is skipped, an int is not a chunk

        port = await self.serve(server)
        response = await self.client().get(f"http://127.0.0.1:{port}/s")
        self.assertEqual(response.code, 500)
        await response.content()
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    async def test_error_mid_stream_truncates_the_body(self) -> None:
        server = self.make_server()

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            def gen() -> Any:
                yield b"partial"
                raise ZeroDivisionError("boom")

            return StreamResponse(gen())

        port = await self.serve(server)
        proto = await self.raw(port, b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        await proto.lost
        self.assertIn(b"7\r\npartial\r\n", proto.data)
        self.assertFalse(proto.data.endswith(b"0\r\n\r\n"))  # no terminating chunk
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    async def test_head_never_starts_the_generator(self) -> None:
        server = self.make_server()
        started: List[bool] = []
        made: List[Any] = []

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            def gen() -> Any:
                started.append(True)
                yield b"body"

            g = gen()
            made.append(g)
            return StreamResponse(g, content_type="text/event-stream")

        port = await self.serve(server)
        proto = await self.raw(port, b"HEAD /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await proto.lost
        self.assertIn(b"HTTP/1.1 200", proto.data)
        self.assertIn(b"Content-Type: text/event-stream", proto.data)
        self.assertTrue(proto.data.endswith(b"\r\n\r\n"))
        self.assertNotIn(b"body", proto.data)
        self.assertEqual(started, [])
        self.assertIsNone(made[0].gi_frame)  # closed

    async def test_middleware_headers_reach_a_stream(self) -> None:
        server = self.make_server()
        seen: List[Any] = []

        class AddHeader(Middleware):
            def process_response(self, request: Any, response: Any) -> Any:
                seen.append(response)
                if isinstance(response, StreamResponse):
                    response.headers["X-Streamed"] = "yes"
                return response

        server.add_middleware(AddHeader())

        @server.route("/s")
        def s(request: Any) -> StreamResponse:
            return StreamResponse(iter(["a", "b"]), content_type="text/plain")

        port = await self.serve(server)
        response = await self.client().get(f"http://127.0.0.1:{port}/s")
        self.assertEqual(await response.content(), b"ab")
        self.assertEqual(response.headers.getRawHeaders("x-streamed"), ["yes"])
        self.assertIsInstance(seen[0], StreamResponse)

    async def test_sse_response_over_the_wire(self) -> None:
        server = self.make_server()

        @server.route("/events")
        def events(request: Any) -> StreamResponse:
            def gen() -> Any:
                yield {"data": "one\nevent: forged", "event": "tick", "id": 1}
                yield sse_event(data={"n": 2})

            return sse_response(gen(), heartbeat=None)

        port = await self.serve(server)
        response = await self.client().get(f"http://127.0.0.1:{port}/events")
        body = (await response.content()).decode("utf-8")
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["text/event-stream; charset=utf-8"])
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-cache"])
        self.assertEqual(parse_sse(body), [
            {"event": "tick", "data": "one\nevent: forged", "id": "1"},
            {"event": "message", "data": '{"n":2}', "id": "1"},
        ])


# -- SSE framing -------------------------------------------------------------------------


def parse_sse(text: str) -> List[Dict[str, str]]:
    """The WHATWG EventSource parsing algorithm (enough of it to check framing)."""
    events = []
    data: List[str] = []
    event_type = ""
    last_id = ""
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data:
                events.append({"event": event_type or "message", "data": "\n".join(data),
                               "id": last_id})
            data, event_type = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            last_id = value
    return events


class SSEFormatTests(unittest.TestCase):
    def test_multiline_data_becomes_several_data_lines(self) -> None:
        self.assertEqual(sse_event("a\nb\r\nc\rd"), "data: a\ndata: b\ndata: c\ndata: d\n\n")

    def test_hostile_data_cannot_forge_an_event(self) -> None:
        hostile = "x\n\nevent: admin\ndata: forged\r\rid: 666\r\nretry: 1\n"
        text = sse_event(hostile, event="chat", id="7")
        self.assertEqual(parse_sse(text), [
            {"event": "chat", "data": "x\n\nevent: admin\ndata: forged\n\nid: 666\nretry: 1\n",
             "id": "7"}])

    def test_fields(self) -> None:
        self.assertEqual(sse_event("d", event="e", id=3, retry=1500),
                         "event: e\nid: 3\nretry: 1500\ndata: d\n\n")
        self.assertEqual(sse_event(comment="keep\nalive"), ": keep\n: alive\n\n")
        self.assertEqual(sse_event(""), "data: \n\n")
        self.assertEqual(sse_event(b"caf\xc3\xa9"), "data: caf\u00e9\n\n")
        self.assertEqual(sse_event([1, "\n"]), 'data: [1,"\\n"]\n\n')

    def test_newlines_in_event_or_id_are_rejected(self) -> None:
        for kwargs in ({"event": "a\nb"}, {"event": "a\rb"}, {"id": "1\n"}, {"id": "1\0"}):
            with self.assertRaises(ValueError):
                sse_event("x", **kwargs)
        for retry in (-1, 1.5, "10", True):
            with self.assertRaises(ValueError):
                sse_event("x", retry=retry)
        with self.assertRaises(ValueError):
            sse_event()

    @settings(max_examples=300, deadline=None)
    @given(st.text(), st.one_of(st.none(), st.text().filter(lambda s: not re.search(r"[\r\n\0]", s))))
    def test_any_data_is_exactly_one_event(self, data: str, event: Optional[str]) -> None:
        events = parse_sse(sse_event(data, event=event))
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["data"], re.sub(r"\r\n|\r", "\n", data))
        self.assertEqual(events[0]["event"], event or "message")


class SSEStreamTests(unittest.TestCase):
    def test_heartbeat_while_idle_then_the_event(self) -> None:
        clock = task.Clock()
        pending: Deferred = Deferred()

        def gen() -> Any:
            yield {"data": "now"}
            yield pending
            yield "data: raw\n\n"

        sse = SSEStream(gen(), heartbeat=15, reactor=clock)
        self.assertEqual(next(sse), "data: now\n\n")
        waiting = next(sse)
        self.assertNoResult(waiting)
        clock.advance(14.9)
        self.assertNoResult(waiting)
        clock.advance(0.1)
        self.assertEqual(self.successResultOf(waiting), ": heartbeat\n\n")
        waiting = next(sse)
        clock.advance(15)
        self.assertEqual(self.successResultOf(waiting), ": heartbeat\n\n")
        waiting = next(sse)
        pending.callback({"data": "late", "event": "x"})
        self.assertEqual(self.successResultOf(waiting), "event: x\ndata: late\n\n")
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(next(sse), "data: raw\n\n")
        self.assertRaises(StopIteration, next, sse)
        self.assertEqual(sse.heartbeats, 2)

    def test_event_ready_between_heartbeat_and_next_request_is_kept(self) -> None:
        clock = task.Clock()
        pending: Deferred = Deferred()

        def gen() -> Any:
            yield pending
            yield pending_two

        pending_two: Deferred = Deferred()
        sse = SSEStream(gen(), heartbeat=1, reactor=clock)
        waiting = next(sse)
        clock.advance(1)
        self.assertEqual(self.successResultOf(waiting), ": heartbeat\n\n")
        pending.callback("data: kept\n\n")  # before the producer asks again
        self.assertEqual(self.successResultOf(next(sse)), "data: kept\n\n")
        waiting = next(sse)
        clock.advance(1)
        pending_two.errback(ZeroDivisionError("source failed"))
        self.successResultOf(waiting)  # the heartbeat
        self.failureResultOf(next(sse), ZeroDivisionError)

    def test_close_cancels_timer_and_closes_source(self) -> None:
        clock = task.Clock()
        pending: Deferred = Deferred()
        closed: List[bool] = []

        def gen() -> Any:
            try:
                yield pending
            finally:
                closed.append(True)

        sse = SSEStream(gen(), heartbeat=5, reactor=clock)
        waiting = next(sse)
        waiting.cancel()  # what the producer does when the client leaves
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(closed, [True])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertTrue(pending.called)  # cancelled (its CancelledError consumed)
        self.assertRaises(StopIteration, next, sse)

    def test_async_source(self) -> None:
        clock = task.Clock()
        gate: Deferred = Deferred()

        async def gen() -> Any:
            yield {"data": 1}
            await gate
            yield {"data": 2}

        sse = SSEStream(gen(), heartbeat=1, reactor=clock)
        self.assertEqual(self.successResultOf(next(sse)), "data: 1\n\n")
        waiting = next(sse)
        clock.advance(1)
        self.assertEqual(self.successResultOf(waiting), ": heartbeat\n\n")
        waiting = next(sse)
        gate.callback(None)
        self.assertEqual(self.successResultOf(waiting), "data: 2\n\n")
        end = next(sse)
        self.assertEqual(self.successResultOf(end), b"")
        self.assertRaises(StopIteration, next, sse)


@per_engine
class ExampleTests(StreamingTestCase):
    """``examples/streaming.py`` (the seed's streaming routes) really serves."""

    def load_example(self) -> Any:
        import importlib
        import sys
        import time
        from types import SimpleNamespace

        from pyliteflux.core.routing import Route
        from pyliteflux.service import importing_app

        sys.modules.pop("examples.streaming", None)
        self.addCleanup(sys.modules.pop, "examples.streaming", None)
        with importing_app(), Route.isolated():
            module = importlib.import_module("examples.streaming")
        # the seed's /stream sleeps 1 s per event; not in a test
        self.patch(module, "time", SimpleNamespace(sleep=lambda s: None, time=time.time))
        module.server.config.update(http_port=0, info=False)
        return module

    async def test_seed_routes(self) -> None:
        module = self.load_example()
        port = await self.serve(module.server)
        base = f"http://127.0.0.1:{port}"
        http = self.client()

        response = await http.get(base + "/api/complex?type=stream")
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/x-ndjson"])
        lines = (await response.content()).decode().splitlines()
        self.assertEqual([json.loads(line) for line in lines], [{"count": i} for i in range(5)])
        response = await http.get(base + "/api/complex?type=error")
        self.assertEqual(response.code, 400)
        self.assertEqual(await (await http.get(base + "/api/complex")).json(),
                         {"message": "Regular JSON response"})

        with open(module.LARGE_FILE, "rb") as f:
            expected = f.read()
        for path in ("/download", "/download-threaded"):
            response = await http.get(base + path)
            self.assertEqual(response.headers.getRawHeaders("content-disposition"),
                             ["attachment; filename=large_file.txt"])
            self.assertEqual(await response.content(), expected)

        for path in ("/stream", "/stream-async?interval=0"):
            response = await http.get(base + path)
            self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/event-stream"])
            events = parse_sse((await response.content()).decode())
            self.assertEqual([e["data"] for e in events], [str(i) for i in range(10)])

        response = await http.get(base + "/events?interval=0")
        events = parse_sse((await response.content()).decode())
        self.assertEqual([json.loads(e["data"])["tick"] for e in events], list(range(10)))
        self.assertEqual({e["event"] for e in events}, {"tick"})
