"""The worker side of the push relay (``push.relay``), wired in memory to the
supervisor side (``push.fanout``) over AMP: two workers' hubs, one directory."""

from __future__ import annotations

from typing import List, Tuple

from twisted.test.iosim import FakeTransport, connect
from twisted.trial import unittest

from pyliteflux.push import PushHub, TopicsMixin
from pyliteflux.push.fanout import Directory, SupervisorControl
from pyliteflux.push.relay import RelayBackend, WorkerControl


class Target(TopicsMixin):
    """A push target that keeps what it was sent."""

    transport_name = "tcp"
    push_format = "json-line"

    def __init__(self, hub: PushHub, client_id: str) -> None:
        self.hub = hub
        self.client_id = client_id
        self.sent: List[bytes] = []

    def send_push(self, payload: bytes) -> bool:
        self.sent.append(payload)
        return True


class Worker:
    """A hub with a RelayBackend whose control connection reaches ``directory``."""

    def __init__(self, directory: Directory, n: int) -> None:
        self.backend = RelayBackend(f"node/{n}")
        self.hub = PushHub(self.backend)
        self.stopped: List[bool] = []
        self.lost: List[bool] = []
        self.control = WorkerControl(self.backend, lambda: self.stopped.append(True),
                                     lambda: self.lost.append(True))
        self.backend.control = self.control
        self.supervisor_side = SupervisorControl(directory, f"node/{n}")
        self.pump = connect(self.supervisor_side, FakeTransport(self.supervisor_side, True),
                            self.control, FakeTransport(self.control, False))

    def target(self, client_id: str) -> Target:
        target = Target(self.hub, client_id)
        self.hub.register(target)
        return target


class RelayTests(unittest.TestCase):
    def setUp(self) -> None:
        self.directory = Directory()
        self.a, self.b = Worker(self.directory, 0), Worker(self.directory, 1)

    def flush(self) -> None:
        for _ in range(3):
            self.a.pump.flush()
            self.b.pump.flush()

    def clients(self) -> Tuple[Target, Target, Target]:
        a1, b1, b2 = self.a.target("a1"), self.b.target("b1"), self.b.target("b2")
        b1.subscribe("room")
        self.flush()
        return a1, b1, b2

    def test_push_to_a_client_of_another_worker(self) -> None:
        a1, b1, b2 = self.clients()
        self.assertEqual(self.a.hub.push("hi", client_id="b1"), 0)  # local deliveries
        self.flush()
        self.assertEqual(b1.sent, [b'{"type": "push", "data": "hi"}\n'])
        self.assertEqual((a1.sent, b2.sent), ([], []))

    def test_topic_and_broadcast_reach_each_target_once(self) -> None:
        a1, b1, b2 = self.clients()
        a1.subscribe("room")
        self.flush()
        self.assertEqual(self.a.hub.push("t", topic="room"), 1)
        self.assertEqual(self.b.hub.push("all"), 2)
        self.flush()
        self.assertEqual(len(a1.sent), 2)
        self.assertEqual(len(b1.sent), 2)
        self.assertEqual(b2.sent, [b'{"type": "push", "data": "all"}\n'])

    def test_a_large_message_crosses(self) -> None:
        _, b1, _ = self.clients()
        message = {"blob": "x" * 200_000}
        self.a.hub.push(message, client_id="b1")
        self.flush()
        self.assertEqual(len(b1.sent), 1)
        self.assertIn(b"x" * 200_000, b1.sent[0])

    def test_presence_covers_every_worker(self) -> None:
        self.clients()
        d = self.a.hub.presence()
        topic = self.b.hub.presence("room")
        self.flush()
        self.assertEqual(self.successResultOf(d),
                         {"a1": "node/0", "b1": "node/1", "b2": "node/1"})
        self.assertEqual(self.successResultOf(topic), {"b1": "node/1"})

    def test_a_target_that_leaves_leaves_presence(self) -> None:
        _, b1, _ = self.clients()
        self.b.hub.unregister(b1)
        self.flush()
        self.assertNotIn("b1", self.directory.clients)
        self.assertNotIn("room", self.directory.topics)

    def test_unknown_client_is_counted_by_the_supervisor(self) -> None:
        self.clients()
        self.a.hub.push("hi", client_id="nobody")
        self.flush()
        self.assertEqual(self.directory.unknown_clients, 1)
        self.flushLoggedErrors()

    def test_stop_command_and_lost_connection(self) -> None:
        self.assertTrue(self.a.supervisor_side.stop_worker())
        self.flush()
        self.assertEqual(self.a.stopped, [True])
        self.a.pump.clientIO.loseConnection()
        self.flush()
        self.assertEqual(self.a.lost, [True])
        self.assertFalse(self.a.backend.up)
        self.assertNotIn(self.a.supervisor_side, self.directory.controls)

    def test_without_a_supervisor_pushes_are_dropped_and_presence_is_local(self) -> None:
        backend = RelayBackend("alone/0")
        hub = PushHub(backend)
        hub.register(Target(hub, "c"))
        hub.push("x")
        hub.push("x", client_id="elsewhere")
        self.assertEqual(hub.stats.dropped["broker_down"], 2)
        self.assertEqual(self.successResultOf(hub.presence()), {"c": "alone/0"})
        self.assertFalse(backend.up)

    def test_a_message_that_is_not_json_stays_local(self) -> None:
        _, b1, _ = self.clients()
        self.assertEqual(self.b.hub.push({1, 2}, topic="nothing"), 0)
        self.assertEqual(self.b.hub.stats.dropped["broker_down"], 1)
