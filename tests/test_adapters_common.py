"""What every adapter shares (adapters/common.py)."""

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from pyliteflux.adapters import ADAPTERS, build_factory
from pyliteflux.adapters.common import AdapterContext, ConnectionSet, cancel_if_pending, when_done
from pyliteflux.config import Config


class WhenDoneTests(SynchronousTestCase):
    def test_plain_values_are_written_now(self):
        for value in ({"a": 1}, "s", None, (1, 2)):
            self.assertIsNone(when_done(value, self.fail, self.fail))

    def test_a_deferred_calls_done_later(self):
        seen = []
        d: Deferred = Deferred()
        self.assertIs(when_done(d, lambda v, tag: seen.append((v, tag)), self.fail, "t"), d)
        d.callback(5)
        self.assertEqual(seen, [(5, "t")])

    def test_a_failing_writer_is_logged_and_answered(self):
        answered = []

        def done(value):
            raise RuntimeError("writer broke")

        d: Deferred = Deferred()
        when_done(d, done, lambda failure: answered.append(failure.type))
        d.callback(1)
        self.assertEqual(answered, [RuntimeError])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_cancel_if_pending(self):
        d: Deferred = Deferred()
        cancel_if_pending(d)
        self.failureResultOf(d)
        cancel_if_pending(None)  # nothing to cancel
        done: Deferred = Deferred()
        done.callback(1)
        cancel_if_pending(done)
        self.assertEqual(self.successResultOf(done), 1)


class ConnectionSetTests(SynchronousTestCase):
    def test_track_and_forget(self):
        connections = ConnectionSet()
        connections.track("a")
        connections.track("b")
        connections.forget("a")
        connections.forget("never")
        self.assertEqual(connections.connections(), ["b"])
        self.assertEqual(connections.open_count(), 1)
        self.assertEqual(list(connections), ["b"])


class RegistryTests(SynchronousTestCase):
    def context(self):
        return AdapterContext(lambda r: None, None, Config(), None, lambda: None)

    def test_sides_are_data(self):
        self.assertEqual(set(ADAPTERS), {"http", "tcp"})
        self.assertEqual(build_factory("http", self.context()).side, "http")
        self.assertEqual(build_factory("tcp", self.context()).side, "tcp")

    def test_unknown_side(self):
        with self.assertRaises(ValueError):
            build_factory("carrier-pigeon", self.context())
