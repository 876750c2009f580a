"""The supervisor's directory (``push.fanout.Directory``): a push goes only
where it is needed."""

from __future__ import annotations

from typing import Any, List, Set, Tuple

from twisted.trial import unittest

from pyliteflux.push.fanout import Directory


class Control:
    """Stands for one worker's control connection."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.clients: Set[str] = set()
        self.delivered: List[Tuple[str, str, Any]] = []

    def deliver(self, kind: str, target: str, message: Any) -> None:
        self.delivered.append((kind, target, message))


class DirectoryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.directory = d = Directory()
        self.w0, self.w1, self.w2 = (Control(f"n/{i}") for i in range(3))
        for control in (self.w0, self.w1, self.w2):
            d.add(control)  # type: ignore[arg-type]
        d.joined(self.w0, "a")  # type: ignore[arg-type]
        d.joined(self.w1, "b")  # type: ignore[arg-type]
        d.subscribed(self.w1, "b", "room")  # type: ignore[arg-type]

    def test_client_push_goes_to_its_worker_only(self) -> None:
        self.assertEqual(self.directory.push(self.w0, "client", "b", "m"), 1)  # type: ignore
        self.assertEqual(self.w1.delivered, [("client", "b", "m")])
        self.assertEqual(self.w2.delivered, [])

    def test_topic_push_goes_to_workers_with_subscribers(self) -> None:
        self.directory.push(self.w0, "topic", "room", "m")  # type: ignore[arg-type]
        self.assertEqual(self.w1.delivered, [("topic", "room", "m")])
        self.assertEqual(self.w2.delivered, [])
        self.assertEqual(self.directory.push(self.w1, "topic", "room", "m"), 0)  # type: ignore

    def test_broadcast_goes_to_every_other_worker_once(self) -> None:
        self.directory.push(self.w0, "broadcast", "", "m")  # type: ignore[arg-type]
        self.assertEqual((self.w0.delivered, len(self.w1.delivered), len(self.w2.delivered)),
                         ([], 1, 1))

    def test_unknown_client(self) -> None:
        self.assertEqual(self.directory.push(self.w0, "client", "zz", "m"), 0)  # type: ignore
        self.assertEqual(self.directory.unknown_clients, 1)

    def test_presence(self) -> None:
        self.assertEqual(self.directory.presence(), {"a": "n/0", "b": "n/1"})
        self.assertEqual(self.directory.presence("room"), {"b": "n/1"})
        self.assertEqual(self.directory.presence("none"), {})

    def test_a_worker_that_goes_is_forgotten(self) -> None:
        self.directory.remove(self.w1)  # type: ignore[arg-type]
        self.assertEqual(self.directory.presence(), {"a": "n/0"})
        self.assertEqual(self.directory.topics, {})
        self.directory.push(self.w0, "broadcast", "", "m")  # type: ignore[arg-type]
        self.assertEqual(self.w1.delivered, [])

    def test_left_and_unsubscribed(self) -> None:
        d = self.directory
        d.subscribed(self.w1, "b", "other")  # type: ignore[arg-type]
        d.unsubscribed(self.w1, "b", "room")  # type: ignore[arg-type]
        self.assertEqual(d.presence("room"), {})
        d.left(self.w1, "b")  # type: ignore[arg-type]
        self.assertEqual(d.presence(), {"a": "n/0"})
        self.assertEqual(d.topics, {})


class BacklogTests(unittest.TestCase):
    """A worker that stops reading: pushes to it queue in the supervisor only
    up to ``max_backlog`` bytes, then are dropped until it reads again."""

    def setUp(self) -> None:
        from twisted.internet.testing import StringTransport

        from pyliteflux.push.fanout import SupervisorControl

        self.control = SupervisorControl(Directory(), "n/0")
        self.control.max_backlog = 10_000
        self.transport = StringTransport()
        self.control.makeConnection(self.transport)

    def test_pushes_beyond_the_backlog_are_dropped_while_not_reading(self) -> None:
        self.assertIs(self.transport.producer, self.control)
        self.control.pauseProducing()  # the transport's buffer is full
        for _ in range(100):
            self.control.deliver("broadcast", "", "x" * 1000)
        queued = len(self.transport.value())
        self.assertLess(queued, 15_000)
        self.assertGreater(self.control.dropped, 80)
        self.control.resumeProducing()  # drained: pushes flow again
        self.control.deliver("broadcast", "", "after")
        self.assertIn(b"after", self.transport.value()[queued:])

    def test_a_reading_worker_is_never_dropped(self) -> None:
        for _ in range(100):
            self.control.deliver("broadcast", "", "x" * 1000)
        self.assertEqual(self.control.dropped, 0)
        self.assertGreater(len(self.transport.value()), 100_000)
