"""SPEC §16's metrics after known traffic, read back with prometheus_client's
own parser: HTTP (TestClient), commands, pushes, drops, jobs, connections,
the broker; label cardinality under hostile paths and command names; one
endpoint over workers."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import Router, Server
from pyliteflux.core.errors import NotFound
from pyliteflux.observability import METRICS, ServerMetrics, WorkerAggregate
from pyliteflux.testing import TestClient
from tests.engines import per_engine


def families(metrics: Any) -> Dict[Tuple[str, str], Any]:
    """(name, type) -> family, parsed from the exposition text. (The parser
    names a counter without its ``_total``: the gauge ``pyliteflux_jobs`` and
    the counter ``pyliteflux_jobs_total`` both come back as ``pyliteflux_jobs``.)"""
    text = metrics.exposition().decode("utf-8")
    return {(f.name, f.type): f for f in text_string_to_metric_families(text)}


def samples(metrics: Any, name: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
    """sample labels (sorted items) -> value, for the samples named ``name``."""
    out = {}
    for family in families(metrics).values():
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(metrics: Any, name: str, **labels: str) -> float:
    return samples(metrics, name).get(tuple(sorted(labels.items())), 0.0)


def app() -> Server:
    server = Server(router=Router(), info=False, tcp_keep_alive=True)
    server.route("/hello")(lambda r: {"message": "Hello, World!"})
    server.route("/user/{id:int}")(lambda r: {"id": r.path_params["id"]})
    server.route("/only-post", method="POST")(lambda r: "posted")
    server.route("/item/{name}", method="PUT")(lambda r: "put")

    @server.route("/boom")
    def boom(request: Any) -> Any:
        raise RuntimeError("boom")

    @server.route("/gone/{x}")
    def gone(request: Any) -> Any:
        raise NotFound()

    server.route("echo", protocol="tcp")(lambda r: "echoed")

    @server.route("fail", protocol="tcp")
    def fail(request: Any) -> Any:
        raise ValueError("no")

    @server.route("later", protocol="tcp")
    def later(request: Any) -> Any:
        return defer.succeed({"later": True}).addCallback(lambda v: v)

    @server.route("sub", protocol="tcp")
    def sub(request: Any) -> Any:
        request.connection.subscribe(request.data["topic"])
        return "ok"

    return server


class NamesTests(SynchronousTestCase):
    def test_every_metric_of_the_table_is_exposed_with_its_labels(self) -> None:
        server = app()
        metrics = server.enable_metrics()
        TestClient(server)  # factories watched: connections are reported
        found = families(metrics)
        self.assertEqual(len(found), len(METRICS))
        for name, (kind, labels) in METRICS.items():
            base = name[:-len("_total")] if kind == "counter" else name
            self.assertIn((base, kind), found, name)
            for s in found[(base, kind)].samples:
                self.assertEqual(set(s.labels) - {"le"}, set(labels), s)
        text = metrics.exposition().decode()
        for name, (kind, _) in METRICS.items():  # the names Prometheus itself sees
            self.assertIn(f"# TYPE {name} {kind}\n", text)

    def test_each_server_has_its_own_registry(self) -> None:
        a, b = app(), app()
        self.assertIsNot(a.enable_metrics().registry, b.enable_metrics().registry)
        self.assertIs(a.enable_metrics(), a.metrics)

    def test_extra_labels_go_on_every_series(self) -> None:
        metrics = ServerMetrics(app().hub, app().jobs, Router(), labels={"worker": "3"})
        for family in families(metrics).values():
            for s in family.samples:
                self.assertEqual(s.labels.get("worker"), "3")


@per_engine
class HTTPTests(TestCase):
    def setUp(self) -> None:
        self.server = app()
        self.metrics = self.server.enable_metrics()
        self.client = TestClient(self.server)

    async def test_requests_by_method_route_and_status(self) -> None:
        c = self.client
        for _ in range(3):
            await c.get("/hello")
        await c.get("/user/1")
        await c.get("/user/2")
        await c.head("/user/3")
        await c.get("/nope")
        await c.get("/only-post")  # 405 on a static route
        await c.get("/item/x")  # 405 on a dynamic route
        await c.get("/boom")
        await c.get("/gone/1")  # the handler's own 404: the route matched
        self.flushLoggedErrors(RuntimeError)
        m = self.metrics
        name = "pyliteflux_http_requests_total"
        self.assertEqual(value(m, name, method="GET", route="/hello", status="200"), 3)
        self.assertEqual(value(m, name, method="GET", route="/user/{id:int}", status="200"), 2)
        self.assertEqual(value(m, name, method="HEAD", route="/user/{id:int}", status="200"), 1)
        self.assertEqual(value(m, name, method="GET", route="<unmatched>", status="404"), 1)
        self.assertEqual(value(m, name, method="GET", route="/only-post", status="405"), 1)
        self.assertEqual(value(m, name, method="GET", route="/item/{name}", status="405"), 1)
        self.assertEqual(value(m, name, method="GET", route="/boom", status="500"), 1)
        self.assertEqual(value(m, name, method="GET", route="/gone/{x}", status="404"), 1)
        self.assertEqual(sum(samples(m, name).values()), 11)

    async def test_duration_histogram_counts_every_request(self) -> None:
        for _ in range(4):
            await self.client.get("/hello")
        m = self.metrics
        count = value(m, "pyliteflux_http_request_duration_seconds_count",
                      method="GET", route="/hello")
        self.assertEqual(count, 4)
        inf = value(m, "pyliteflux_http_request_duration_seconds_bucket",
                    method="GET", route="/hello", le="+Inf")
        self.assertEqual(inf, 4)
        total = value(m, "pyliteflux_http_request_duration_seconds_sum",
                      method="GET", route="/hello")
        self.assertGreater(total, 0)
        self.assertLess(total, 4)
        buckets = [v for k, v in samples(m, "pyliteflux_http_request_duration_seconds_bucket")
                   .items()]
        self.assertTrue(all(v <= 4 for v in buckets))

    async def test_a_thousand_distinct_paths_stay_a_few_series(self) -> None:
        c = self.client
        for i in range(1000):
            await c.get(f"/user/{i}")
            await c.get(f"/random/{i}?q={i}")
        await c.request("BREW", "/hello")  # an unknown method is "OTHER"
        series = samples(self.metrics, "pyliteflux_http_requests_total")
        routes = {dict(k)["route"] for k in series}
        # (llhttp answers an unknown method 400 before routing: docs/http-engines.md)
        expected = {"/user/{id:int}", "<unmatched>"} | (
            {"/hello"} if self.http_engine == "twisted" else set())
        self.assertEqual(routes, expected)
        self.assertLessEqual(len(series), 4)
        methods = {dict(k)["method"] for k in series}
        self.assertEqual(methods, {"GET", "OTHER"} if self.http_engine == "twisted" else {"GET"})
        buckets = samples(self.metrics, "pyliteflux_http_request_duration_seconds_bucket")
        self.assertLessEqual(len(buckets), 3 * 15)

    def test_open_http_connections_are_a_live_gauge(self) -> None:
        site = self.server.site()  # built after enable_metrics: watched
        channels = []
        for port in (40001, 40002):
            channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
            channel.makeConnection(StringTransport())
            channels.append(channel)
        self.assertEqual(value(self.metrics, "pyliteflux_connections", transport="http"), 2)
        for channel in channels:
            channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(value(self.metrics, "pyliteflux_connections", transport="http"), 0)


class CommandTests(TestCase):
    def setUp(self) -> None:
        self.server = app()
        self.metrics = self.server.enable_metrics()
        self.client = TestClient(self.server)

    async def test_commands_by_name_transport_and_outcome(self) -> None:
        conn = self.client.connect()
        await conn.send({"command": "echo", "data": {"a": 1}})
        await conn.send({"command": "echo"})
        await conn.send("echo raw")
        await conn.send("<request command='echo'/>")
        await conn.send({"command": "fail"})
        await conn.send({"command": "later"})
        await conn.send({"command": "nope"})
        self.flushLoggedErrors(ValueError)
        name = "pyliteflux_commands_total"
        m = self.metrics
        self.assertEqual(value(m, name, command="echo", transport="tcp", outcome="ok"), 4)
        self.assertEqual(value(m, name, command="fail", transport="tcp", outcome="error"), 1)
        self.assertEqual(value(m, name, command="later", transport="tcp", outcome="ok"), 1)
        self.assertEqual(value(m, name, command="<unknown>", transport="tcp", outcome="error"), 1)

    async def test_a_command_still_running_is_counted_when_it_ends(self) -> None:
        gate: defer.Deferred[Any] = defer.Deferred()
        self.server.route("wait", protocol="tcp")(lambda r: gate)
        conn = self.client.connect()
        reply = conn.send({"command": "wait"})
        name = "pyliteflux_commands_total"
        self.assertEqual(value(self.metrics, name, command="wait", transport="tcp",
                               outcome="ok"), 0)
        gate.callback({"done": 1})
        await reply
        self.assertEqual(value(self.metrics, name, command="wait", transport="tcp",
                               outcome="ok"), 1)

    async def test_a_thousand_unknown_commands_are_one_series(self) -> None:
        conn = self.client.connect()
        for i in range(1000):
            await conn.send({"command": f"cmd{i}"})
        series = samples(self.metrics, "pyliteflux_commands_total")
        self.assertEqual(series, {(("command", "<unknown>"), ("outcome", "error"),
                                   ("transport", "tcp")): 1000})

    async def test_open_tcp_connections_are_a_live_gauge(self) -> None:
        a, b = self.client.connect(), self.client.connect()
        self.assertEqual(value(self.metrics, "pyliteflux_connections", transport="tcp"), 2)
        a.close()
        self.assertEqual(value(self.metrics, "pyliteflux_connections", transport="tcp"), 1)
        b.close()
        self.assertEqual(value(self.metrics, "pyliteflux_connections", transport="tcp"), 0)


class PushTests(TestCase):
    def setUp(self) -> None:
        self.server = app()
        self.metrics = self.server.enable_metrics()
        self.client = TestClient(self.server)

    async def test_messages_deliveries_and_unknown_client_drops(self) -> None:
        a, b = self.client.connect(), self.client.connect()
        await a.send({"command": "sub", "data": {"topic": "room"}})
        self.server.push_message("one", client_id=a.client_id)
        self.server.push_message("all")
        self.server.push_message("room", topic="room")
        self.server.push_message("lost", client_id="10.0.0.1:1")
        self.assertEqual(len(a.pushes) + len(b.pushes), 4)
        m = self.metrics
        kinds = samples(m, "pyliteflux_push_messages_total")
        self.assertEqual(kinds, {(("kind", "client"),): 2, (("kind", "topic"),): 1,
                                 (("kind", "broadcast"),): 1})
        self.assertEqual(value(m, "pyliteflux_push_deliveries_total", transport="tcp"), 4)
        self.assertEqual(value(m, "pyliteflux_push_dropped_total", reason="unknown_client"), 1)
        self.assertEqual(value(m, "pyliteflux_push_dropped_total", reason="slow_consumer"), 0)

    async def test_a_slow_consumer_dropped_is_counted(self) -> None:
        self.server.config.max_output_buffer = 1000
        slow = self.client.connect()
        slow.protocol.pauseProducing()  # its transport's buffer is full: the client stopped reading
        for _ in range(20):
            self.server.push_message("x" * 100)
        self.assertTrue(slow.closed)
        m = self.metrics
        self.assertEqual(value(m, "pyliteflux_push_dropped_total", reason="slow_consumer"), 1)
        self.assertEqual(value(m, "pyliteflux_connections", transport="tcp"), 0)


class JobTests(TestCase):
    async def test_jobs_done_failed_and_rejected(self) -> None:
        server = app()
        server.jobs.max_queued = 2  # (what bg_max_queued sets when the service starts)
        metrics = server.enable_metrics()

        def bad() -> None:
            raise KeyError("job")

        @server.route("/jobs")
        def jobs(request: Any) -> Any:
            request.bg.add(lambda: None)
            request.bg.add(bad)
            return "queued"

        @server.route("/many")
        def many(request: Any) -> Any:
            request.bg.add(lambda: None)  # over the limit: 503, the job refused
            return "never"

        client = TestClient(server)
        await client.get("/jobs")
        assert client.jobs is not None
        for result in client.jobs.results:  # the failed job's failure is the test's
            result.addErrback(lambda f: f.trap(KeyError) and None)
        server.jobs.max_queued = 0  # the queue is full
        r = await client.get("/many")
        self.assertEqual(r.code, 503)
        self.assertEqual(value(metrics, "pyliteflux_jobs_total", outcome="done"), 1)
        self.assertEqual(value(metrics, "pyliteflux_jobs_total", outcome="failed"), 1)
        self.assertEqual(value(metrics, "pyliteflux_jobs_total", outcome="rejected"), 1)
        self.assertEqual(value(metrics, "pyliteflux_jobs", state="queued"), 0)
        self.assertEqual(value(metrics, "pyliteflux_jobs", state="running"), 0)

    async def test_queued_and_running_read_the_runner_live(self) -> None:
        server = app()
        metrics = server.enable_metrics()
        server.jobs.stats.queued, server.jobs.stats.running = 3, 2
        self.assertEqual(value(metrics, "pyliteflux_jobs", state="queued"), 3)
        self.assertEqual(value(metrics, "pyliteflux_jobs", state="running"), 2)


class FakeBackend:
    """A push backend whose link can be cut (what Redis down looks like)."""

    node_id = "fake"
    up = True

    def attach(self, hub: Any) -> None:
        self.hub = hub

    def start(self, hub: Any) -> None:
        self.hub = hub

    def stop(self) -> None:
        return None

    def joined(self, target: Any) -> None:
        pass

    left = joined

    def subscribed(self, target: Any, topic: str) -> None:
        pass

    unsubscribed = subscribed

    def forward_client(self, client_id: str, message: Any) -> None:
        pass

    def forward_topic(self, topic: str, message: Any) -> None:
        pass

    def forward_broadcast(self, message: Any) -> None:
        pass

    def presence(self, topic: Any = None) -> Any:
        return defer.succeed({})


class BrokerTests(SynchronousTestCase):
    def test_broker_up_follows_the_backend(self) -> None:
        server = app()
        metrics = server.enable_metrics()
        self.assertEqual(value(metrics, "pyliteflux_broker_up"), 1)  # local: always up
        backend = FakeBackend()
        server.hub.backend = backend
        backend.up = False
        self.assertEqual(value(metrics, "pyliteflux_broker_up"), 0)
        backend.up = True
        self.assertEqual(value(metrics, "pyliteflux_broker_up"), 1)


class WorkerAggregateTests(SynchronousTestCase):
    def test_one_endpoint_labels_each_worker_and_forgets_replaced_ones(self) -> None:
        workers = {}
        for n in ("1", "2"):
            server = app()
            metrics = server.enable_metrics()
            metrics.http(b"GET", "/hello", 200, 0.001)
            if n == "2":
                metrics.http(b"GET", "/hello", 200, 0.002)
            workers[n] = metrics
        aggregate = WorkerAggregate(lambda: {n: m.exposition().decode() for n, m in
                                             workers.items()})
        name = "pyliteflux_http_requests_total"
        self.assertEqual(value(aggregate, name, method="GET", route="/hello", status="200",
                               worker="1"), 1)
        self.assertEqual(value(aggregate, name, method="GET", route="/hello", status="200",
                               worker="2"), 2)
        self.assertEqual(value(aggregate, "pyliteflux_http_request_duration_seconds_count",
                               method="GET", route="/hello", worker="2"), 2)
        del workers["1"]  # replaced: its series go away
        workers_seen = {dict(k)["worker"] for k in samples(aggregate, name)}
        self.assertEqual(workers_seen, {"2"})

    def test_merged_families_keep_their_names_and_types(self) -> None:
        """The gauge pyliteflux_jobs and the counter pyliteflux_jobs_total
        share a name once parsed; merged, each keeps its own family."""
        from .prometheus_text import assert_well_formed, families

        metrics = app().enable_metrics()
        one = metrics.exposition().decode()
        merged = WorkerAggregate(lambda: {"0": one, "1": one}).exposition().decode()
        self.assertEqual(families(merged), families(one))
        self.assertIn("pyliteflux_jobs_total counter", families(merged))
        assert_well_formed(self, one)
        assert_well_formed(self, merged)


class ClockTests(SynchronousTestCase):
    def test_recording_needs_no_reactor(self) -> None:
        server = Server(router=Router(), reactor=Clock(), info=False)
        metrics = server.enable_metrics()
        metrics.http(b"GET", "/x", 200, 20.0)  # over the last bucket: only +Inf
        self.assertEqual(value(metrics, "pyliteflux_http_request_duration_seconds_bucket",
                               method="GET", route="/x", le="10.0"), 0)
        self.assertEqual(value(metrics, "pyliteflux_http_request_duration_seconds_bucket",
                               method="GET", route="/x", le="+Inf"), 1)


class DocsTests(SynchronousTestCase):
    def test_the_dashboard_and_the_docs_use_exactly_the_metric_names(self) -> None:
        import json
        import os
        import re

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        suffixes = ("_bucket", "_count", "_sum")
        with open(os.path.join(root, "docs", "grafana-dashboard.json")) as f:
            dashboard = json.load(f)
        exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        with open(os.path.join(root, "docs", "observability.md")) as f:
            doc = f.read()
        for text in (exprs, doc):
            for name in set(re.findall(r"pyliteflux_[a-z_]+", text)):
                base = next((name[:-len(s)] for s in suffixes
                             if name.endswith(s) and name[:-len(s)] in METRICS), name)
                self.assertIn(base, METRICS, name)
        used = set(re.findall(r"pyliteflux_[a-z_]+", exprs))
        for name in METRICS:  # every metric has a panel
            self.assertTrue(any(u.startswith(name) for u in used), name)
