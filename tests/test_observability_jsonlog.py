"""``log_format = "json"``: every event one JSON object per line; access
events carry method, path, status, duration and client; twistd and
``python -m pyliteflux`` pick the observer up."""

from __future__ import annotations

import io
import json
from typing import Any, Dict, List

from twisted.application.service import Application
from twisted.logger import ILogObserver, Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux import Router, Server
from pyliteflux.log import console_observer
from pyliteflux.observability import JSONLogObserver, json_observer
from pyliteflux.tap import Options, makeService
from pyliteflux.testing import TestClient


def lines(out: io.StringIO) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


class ObserverTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.out = io.StringIO()
        self.log = Logger(namespace="test.ns", observer=JSONLogObserver(self.out))

    def test_one_json_object_per_line_with_the_event_fields(self) -> None:
        self.log.info("hello {who}", who="world", count=3)
        self.log.warn("second")
        first, second = lines(self.out)
        self.assertEqual(first["message"], "hello world")
        self.assertEqual((first["who"], first["count"]), ("world", 3))
        self.assertEqual((first["level"], first["namespace"]), ("info", "test.ns"))
        self.assertTrue(first["time"].endswith("Z"))
        self.assertEqual(second["level"], "warn")
        self.assertEqual(len(self.out.getvalue().splitlines()), 2)

    def test_a_failure_brings_its_error_and_traceback(self) -> None:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            self.log.failure("it broke", Failure())
        (event,) = lines(self.out)
        self.assertEqual(event["level"], "critical")
        self.assertIn("division", event["error"])
        self.assertIn("ZeroDivisionError", event["traceback"])

    def test_values_json_cannot_hold_are_strings(self) -> None:
        self.log.info("x", thing=object(), pair=(1, 2), nested={"a": [1]}, bad={1: object()})
        (event,) = lines(self.out)
        self.assertTrue(event["thing"].startswith("<object object"))
        self.assertEqual((event["pair"], event["nested"]), ([1, 2], {"a": [1]}))
        self.assertIsInstance(event["bad"], str)

    def test_extra_fields_on_every_line_and_ours_win_over_the_events(self) -> None:
        out = io.StringIO()
        log = Logger(namespace="n", observer=JSONLogObserver(out, {"worker": 2}))
        log.info("m", namespace="mine", worker=5)
        (event,) = lines(out)
        self.assertEqual((event["worker"], event["namespace"]), (2, "n"))

    def test_legacy_log_msg_events(self) -> None:
        observer = JSONLogObserver(self.out)
        observer({"log_format": None, "log_legacy": True, "message": ("a", "b"),
                  "format": None, "isError": 0, "system": "-", "time": 0.0,
                  "log_time": 0.0, "log_level": LogLevel.info, "log_namespace": "log_legacy"})
        (event,) = lines(self.out)
        self.assertEqual(event["namespace"], "log_legacy")
        self.assertEqual(event["system"], "-")

    def test_level_filter(self) -> None:
        out = io.StringIO()
        log = Logger(namespace="n", observer=json_observer(out, LogLevel.warn))
        log.info("quiet")
        log.error("loud")
        self.assertEqual([e["message"] for e in lines(out)], ["loud"])

    def test_console_observer_by_format(self) -> None:
        self.assertIsInstance(console_observer("json")._observer, JSONLogObserver)
        self.assertNotIsInstance(console_observer("text")._observer, JSONLogObserver)


class AccessLogTests(TestCase):
    async def test_access_events_carry_method_path_status_duration_client(self) -> None:
        server = Server(router=Router(), info=True)
        server.route("/user/{id}")(lambda r: {"id": r.path_params["id"]})
        out = io.StringIO()
        observer = JSONLogObserver(out)

        def access_only(event: Dict[str, Any]) -> None:
            if event.get("log_namespace") == "pyliteflux.access":
                observer(event)

        globalLogPublisher.addObserver(access_only)
        self.addCleanup(globalLogPublisher.removeObserver, access_only)
        client = TestClient(server)
        await client.get("/user/42?q=1")
        await client.get("/missing")
        ok, missing = lines(out)
        self.assertEqual((ok["method"], ok["path"], ok["status"], ok["client"]),
                         ("GET", "/user/42", 200, "127.0.0.1"))
        self.assertEqual(ok["route"], "/user/{id}")
        self.assertIsInstance(ok["duration"], float)
        self.assertGreaterEqual(ok["duration"], 0)
        self.assertLess(ok["duration"], 5)
        self.assertEqual((missing["status"], missing["route"]), (404, "<unmatched>"))
        self.assertEqual(ok["message"], "127.0.0.1 GET /user/42?q=1 200 %d" % ok["length"])


class TwistdTests(SynchronousTestCase):
    def test_log_format_json_becomes_the_applications_log_observer(self) -> None:
        options = Options()
        options.parseOptions(["--log-format", "json", "--http", "tcp:0:interface=127.0.0.1"])
        service = makeService(options)
        self.assertIsNotNone(service.log_observer)
        application = Application("pyliteflux")
        service.setServiceParent(application)  # what twistd does before it starts logging
        self.assertIs(application.getComponent(ILogObserver), service.log_observer)

    def test_text_leaves_twistds_logging_alone(self) -> None:
        options = Options()
        options.parseOptions(["--http", "tcp:0:interface=127.0.0.1"])
        service = makeService(options)
        application = Application("pyliteflux")
        service.setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver, None))
