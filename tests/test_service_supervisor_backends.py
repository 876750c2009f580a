"""Workers (SPEC §15) with the rest of part two, in real processes on
loopback: the supervisor's metrics endpoint over every worker (§16), JSON
logs naming the worker, and the Redis backend with each worker a node of
its own (``"<node_id>/<n>"``, §13).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any, Dict, List

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.trial import unittest

from tests.prometheus_text import assert_well_formed
from tests.redis_server import RedisServer
from tests.test_service_supervisor import LOCAL, Cluster, poll


def fetch(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def samples(text: str, name: str) -> List[Any]:
    return [s for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name]


class SupervisorMetricsTests(unittest.TestCase):
    timeout = 90

    def test_one_endpoint_labels_every_workers_series(self) -> Any:
        def scenario() -> None:
            cluster = Cluster(self, "--metrics", LOCAL).start()
            found = [re.search(r"METRICS listening on 127\.0\.0\.1:(\d+)", line)
                     for line in cluster.child.seen]
            port = int(next(m for m in found if m).group(1))
            self.assertEqual(fetch(port, "/readyz"), (200, '{"status": "ready"}'))
            self.assertEqual(fetch(port, "/healthz")[0], 200)
            served: Dict[int, int] = {}
            for _ in range(200):  # until both workers have served some
                who = cluster.get("/pid")["worker"]
                served[who] = served.get(who, 0) + 1
                if len(served) == 2 and min(served.values()) >= 3:
                    break
            status, text = fetch(port, "/metrics")
            self.assertEqual(status, 200)
            assert_well_formed(self, text)
            counted = {s.labels["worker"]: s.value
                       for s in samples(text, "pyliteflux_http_requests_total")
                       if s.labels.get("route") == "/pid"}
            self.assertEqual(counted, {str(n): float(c) for n, c in served.items()})
            up = samples(text, "pyliteflux_broker_up")
            self.assertEqual(sorted(s.labels["worker"] for s in up), ["0", "1"])
            self.assertTrue(all(s.value == 1.0 for s in up))

        return deferToThread(scenario)

    def test_json_logs_name_the_worker(self) -> Any:
        def scenario() -> None:
            cluster = Cluster(self, "--log-format", "json").start()
            cluster.get("/pid")
            match = cluster.child.wait_for(r'"namespace": "pyliteflux.access"')
            event = json.loads(match.string)
            self.assertIn(event["worker"], (0, 1))
            self.assertEqual(event["path"], "/pid")

        return deferToThread(scenario)


class SupervisorRedisTests(unittest.TestCase):
    timeout = 90

    def setUp(self) -> Any:
        self.redis = RedisServer(self)
        return self.redis.start()

    def test_each_worker_is_a_redis_node_and_pushes_cross_them(self) -> Any:
        url = self.redis.url

        def scenario() -> None:
            cluster = Cluster(self, "--push-backend", url, "--node-id", "host-a").start()
            clients = cluster.clients_on_every_worker("room")
            expected = {c[2]["client_id"]: f"host-a/{c[2]['worker']}" for c in clients}
            # (each worker writes its clients to Redis as they come: a moment later)
            poll(lambda: cluster.get("/presence") == expected, 5, "presence in Redis")
            for _sock, lines, who in {c[2]["pid"]: c for c in clients}.values():
                cluster.push_from_the_other_worker(who, lines)
            cluster.get("/push?topic=room&message=t")
            for _sock, lines, _who in clients:
                self.assertEqual(json.loads(lines.readline()),
                                 {"type": "push", "topic": "room", "data": "t"})
            # the presence came from Redis: both workers registered as nodes there
            nodes = blockingCallFromThread(reactor, self.redis.command,
                                           "SMEMBERS", "pyliteflux:nodes")
            self.assertEqual(sorted(n.decode() if isinstance(n, bytes) else n for n in nodes),
                             ["host-a/0", "host-a/1"])

        return deferToThread(scenario)

    def test_readyz_is_503_while_redis_is_down(self) -> Any:
        url = self.redis.url

        def scenario() -> None:
            cluster = Cluster(self, "--push-backend", url, "--metrics", LOCAL).start()
            found = [re.search(r"METRICS listening on 127\.0\.0\.1:(\d+)", line)
                     for line in cluster.child.seen]
            port = int(next(m for m in found if m).group(1))
            poll(lambda: fetch(port, "/readyz")[0] == 200, 10, "ready with Redis up")
            blockingCallFromThread(reactor, self.redis.kill)
            poll(lambda: fetch(port, "/readyz") == (503, '{"status": "broker down"}'), 15,
                 "503 while Redis is down")
            self.assertEqual(cluster.get("/pid")["worker"] in (0, 1), True)  # still serving
            blockingCallFromThread(reactor, self.redis.start)
            poll(lambda: fetch(port, "/readyz")[0] == 200, 15, "ready again")

        return deferToThread(scenario)
