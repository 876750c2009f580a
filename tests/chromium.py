"""Headless Chromium for end-to-end tests, driven over the DevTools protocol.

``Browser.start(url)`` spawns Chromium with a remote-debugging port of its
own choosing, reads the DevTools address from its stderr, and connects
autobahn's WebSocket client to the page; ``evaluate(js)`` runs an
expression in the page and ``wait_for(js)`` polls one until it is truthy.
``SKIP`` is the reason to skip when no Chromium is installed, except in CI
(``CI=true``), where a missing Chromium must fail the test instead.
"""

import json
import os
import re
import shutil
import tempfile

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, error, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint

CHROMIUM = next(filter(None, (shutil.which(name) for name in
                              ("chromium", "chromium-browser", "google-chrome"))), None)
IN_CI = os.environ.get("CI", "").lower() == "true"
SKIP = None if CHROMIUM or IN_CI else "Chromium is not installed (Debian: apt-get install chromium)"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class _Process(protocol.ProcessProtocol):
    def __init__(self):
        self.err = b""
        self.devtools = defer.Deferred()
        self.ended = defer.Deferred()

    def errReceived(self, data):
        self.err += data
        found = re.search(rb"DevTools listening on (ws://\S+)", self.err)
        if found and not self.devtools.called:
            self.devtools.callback(found.group(1).decode())

    def processEnded(self, reason):
        if not self.devtools.called:
            self.devtools.errback(RuntimeError(
                "Chromium exited: " + self.err[-2000:].decode("utf-8", "replace")))
        self.ended.callback(None)


class _DevTools(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        message = json.loads(payload)
        waiter = self.factory.calls.pop(message.get("id"), None)
        if waiter is not None:
            if "error" in message:
                waiter.errback(RuntimeError(str(message["error"])))
            else:
                waiter.callback(message.get("result"))

    def call(self, method, **params):
        factory = self.factory
        factory.next_id += 1
        d = defer.Deferred()
        factory.calls[factory.next_id] = d
        self.sendMessage(json.dumps({"id": factory.next_id, "method": method,
                                     "params": params}).encode())
        return d


class _Timers:
    def call_later(self, delay, func, *args, **kwargs):
        return reactor.callLater(delay, func, *args, **kwargs)


class Browser:
    """One headless Chromium with one page."""

    @classmethod
    async def start(cls, url, timeout=60.0):
        if CHROMIUM is None:
            raise AssertionError("CI=true but Chromium is not installed")
        self = cls()
        self.profile = tempfile.mkdtemp(prefix="pyliteflux-chromium-")
        self.process = _Process()
        args = [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        self.transport = reactor.spawnProcess(self.process, CHROMIUM, args, env=dict(os.environ))
        self.killer = reactor.callLater(timeout, self.kill)
        browser_url = await self.process.devtools
        browser = await self._connect(browser_url)
        target = await browser.call("Target.createTarget", url="about:blank")
        self.page = await self._connect(re.sub(r"/devtools/browser/.*$",
                                               f"/devtools/page/{target['targetId']}",
                                               browser_url))
        self.browser = browser
        await self.page.call("Page.navigate", url=url)
        return self

    @staticmethod
    async def _connect(url):
        factory = WebSocketClientFactory(url)
        factory._batched_timer = _Timers()  # plain callLater: nothing left for trial
        factory.protocol = _DevTools
        factory.opened = defer.Deferred()
        factory.calls = {}
        factory.next_id = 0
        host, port = re.match(r"ws://([^:/]+):(\d+)", url).groups()
        await TCP4ClientEndpoint(reactor, host, int(port)).connect(factory)
        return await factory.opened

    async def evaluate(self, expression):
        result = await self.page.call("Runtime.evaluate", expression=expression,
                                      returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression, timeout=20.0):
        """Poll ``expression`` until it is truthy; its value."""
        deadline = reactor.seconds() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if reactor.seconds() > deadline:
                raise AssertionError(f"timed out waiting for {expression!r} in the page")
            await task.deferLater(reactor, 0.05, lambda: None)

    def kill(self):
        try:
            self.transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    async def stop(self):
        if self.killer.active():
            self.killer.cancel()
        self.kill()  # the DevTools connections drop with it
        await self.process.ended
        shutil.rmtree(self.profile, True)
