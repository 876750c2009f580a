"""Workers' logs (``service.worker_logs``): relayed into the supervisor's
log when its stdout goes nowhere (a daemonized twistd), straight otherwise."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from typing import Any, Dict, List

from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest

from pyliteflux.service.worker_logs import MAX_LINE, LogRelay, relay_needed
from tests.test_service_supervisor import LOCAL, alive, poll
from tests.test_tap import REPO, TWISTD, subprocess_env


class LogRelayTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.events: List[Dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.relay = LogRelay(3)

    def test_a_json_event_becomes_an_event_of_the_supervisor(self) -> None:
        line = json.dumps({"time": "t", "level": "warn", "namespace": "pyliteflux.access",
                           "message": "GET /x 200", "worker": 3, "path": "/x", "status": 200})
        self.relay.received(1, line.encode()[:10])  # in two pieces
        self.assertEqual(self.events, [])
        self.relay.received(1, line.encode()[10:] + b"\n")
        (event,) = self.events
        self.assertEqual((event["log_namespace"], event["log_level"]),
                         ("pyliteflux.access", LogLevel.warn))
        self.assertEqual((event["text"], event["path"], event["status"], event["worker_id"]),
                         ("GET /x 200", "/x", 200, 3))
        self.assertNotEqual(event.get("time"), "t")  # the worker's stamp is not a field

    def test_other_lines_are_passed_on_as_lines(self) -> None:
        self.relay.received(2, b"Traceback (most recent call last):\n  File x\n")
        self.relay.received(1, b"{not json\nprinted")
        self.relay.flush()
        self.assertEqual([(e["line"], e["log_level"]) for e in self.events],
                         [("Traceback (most recent call last):", LogLevel.warn),
                          ("  File x", LogLevel.warn), ("{not json", LogLevel.info),
                          ("printed", LogLevel.info)])

    def test_a_line_without_end_is_not_buffered_without_bound(self) -> None:
        for _ in range(4):
            self.relay.received(1, b"x" * (MAX_LINE // 2 + 1))
        self.assertEqual(len(self.events), 2)
        self.assertLessEqual(sum(len(p) for p in self.relay._partial.values()), MAX_LINE)

    def test_only_dev_null_needs_the_relay(self) -> None:
        with open(os.devnull, "w") as null:
            self.assertTrue(relay_needed(null.fileno()))
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        self.assertFalse(relay_needed(write))


class DaemonTests(unittest.TestCase):
    timeout = 60

    def test_a_daemonized_twistd_logs_its_workers_requests(self) -> Any:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        pidfile, logfile = os.path.join(directory, "t.pid"), os.path.join(directory, "t.log")

        def scenario() -> None:
            argv = [*TWISTD, "--pidfile", pidfile, "--logfile", logfile, "pyliteflux",
                    "--app", "tests.workers_app:server", "-w", "2", "--http", LOCAL,
                    "--tcp", LOCAL]
            subprocess.run(argv, cwd=REPO, env=subprocess_env(), check=True, timeout=30)

            def log() -> str:
                with open(logfile) as f:
                    return f.read()

            poll(lambda: os.path.exists(pidfile) and "2 workers ready" in log(), 20,
                 "the daemon's workers")
            with open(pidfile) as f:
                supervisor = int(f.read())
            self.addCleanup(lambda: alive(supervisor) and os.kill(supervisor, signal.SIGKILL))
            port = int(re.search(r"HTTP listening on 127\.0\.0\.1:(\d+)", log()).group(1))
            import urllib.request

            for _ in range(4):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/pid", timeout=10).read()
            poll(lambda: len(re.findall(r"\[worker \d\] 127\.0\.0\.1 GET /pid 200", log())) == 4,
                 10, "the workers' access lines in the daemon's log file")
            os.kill(supervisor, signal.SIGTERM)
            poll(lambda: not alive(supervisor), 20, "the daemon to stop")
            self.assertIn("every worker has exited", log())

        return deferToThread(scenario)
