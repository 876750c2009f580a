"""End to end: a real browser's ``EventSource`` reads a pyliteflux SSE stream.

Headless Chromium (Debian package ``chromium``) loads a page from the test
server; the page opens ``EventSource("/stream")``, writes every event it
receives into the DOM and closes the source after the last one. Chromium's
``--dump-dom`` prints the DOM once the page has settled, and the test checks
what arrived — including that a hostile multi-line payload arrived as one
event and forged no other. Skipped only when no Chromium is installed.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from typing import Any, List

from twisted.internet import error, protocol, reactor, task
from twisted.trial import unittest

from pyliteflux import HTTPResponse, Server
from pyliteflux.core.routing import Router
from pyliteflux.streaming import sse_event, sse_response

CHROMIUM = next(filter(None, (shutil.which(name) for name in
                              ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--disable-dev-shm-usage",
]
BROWSER_TIMEOUT = 60.0

HOSTILE = "line one\nevent: forged\r\ndata: injected\n\nid: 666"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>sse</title></head>
<body><pre id="log"></pre><div id="state">waiting</div>
<script>
const received = [];
const source = new EventSource("/stream");
function record(kind, e) {
  received.push({kind: kind, data: e.data, id: e.lastEventId});
  document.getElementById("log").textContent = JSON.stringify(received);
}
source.onmessage = (e) => record("message", e);
source.addEventListener("forged", (e) => record("forged", e));
source.addEventListener("done", (e) => {
  record("done", e);
  source.close();
  document.getElementById("state").textContent = "closed";
});
source.onerror = () => { document.getElementById("state").textContent += " error"; };
</script></body></html>
"""


class _Collect(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.out: List[bytes] = []
        self.err: List[bytes] = []
        self.ended: Any = None
        from twisted.internet.defer import Deferred

        self.done: Deferred = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Any) -> None:
        self.done.callback(reason.value)


class BrowserSSETests(unittest.TestCase):
    timeout = BROWSER_TIMEOUT + 30

    if CHROMIUM is None:
        skip = "Chromium is not installed (Debian: apt-get install chromium)"

    async def test_eventsource_receives_events(self) -> None:
        server = Server(router=Router(), http_port=0, info=False)

        @server.route("/")
        def page(request: Any) -> HTTPResponse:
            return HTTPResponse(PAGE, headers={"Content-Type": "text/html; charset=utf-8"})

        @server.route("/stream")
        def stream(request: Any) -> Any:
            def events() -> Any:
                for i in range(3):
                    # produced later, on the reactor: the browser gets them one by one
                    yield task.deferLater(reactor, 0.02, sse_event, data=f"tick {i}", id=str(i))
                yield {"data": HOSTILE, "id": "h"}
                yield sse_event(data="bye", event="done", retry=60000)

            return sse_response(events(), heartbeat=0.01)

        listening = await server.listen("http")
        self.addCleanup(server._stop_service)
        url = f"http://127.0.0.1:{listening.http_port}/"

        profile = tempfile.mkdtemp(prefix="pyliteflux-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        proc = _Collect()
        args = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                "--virtual-time-budget=10000", "--dump-dom", url]
        transport = reactor.spawnProcess(proc, CHROMIUM, args, env=dict(os.environ))

        def kill() -> None:
            try:
                transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                pass

        killer = reactor.callLater(BROWSER_TIMEOUT, kill)
        await proc.done
        if killer.active():
            killer.cancel()
        dom = b"".join(proc.out).decode("utf-8", "replace")
        if "id=\"log\"" not in dom:
            self.fail(f"Chromium printed no DOM; stderr tail:\n"
                      f"{b''.join(proc.err)[-2000:].decode('utf-8', 'replace')}")
        log_text = html.unescape(dom.split('<pre id="log">', 1)[1].split("</pre>", 1)[0])
        state = dom.split('<div id="state">', 1)[1].split("</div>", 1)[0]
        received = json.loads(log_text)
        self.assertEqual(received, [
            {"kind": "message", "data": "tick 0", "id": "0"},
            {"kind": "message", "data": "tick 1", "id": "1"},
            {"kind": "message", "data": "tick 2", "id": "2"},
            {"kind": "message", "data": HOSTILE.replace("\r\n", "\n"), "id": "h"},
            {"kind": "done", "data": "bye", "id": "h"},
        ])
        self.assertEqual(state, "closed")
