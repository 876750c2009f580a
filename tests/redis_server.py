"""A real redis-server for the tests: started on a free 127.0.0.1 port with
no persistence, killed (or paused, or restarted on the same port) at will,
stopped after. Missing redis-server: the test is skipped, except in CI
(``CI=true``) where it fails."""

import os
import shutil
import signal
import socket

from twisted.internet import defer, error, protocol, reactor
from twisted.trial.unittest import SkipTest


def redis_server_path():
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)


def require_redis(testcase):
    """The path of redis-server, or skip (fail in CI)."""
    path = redis_server_path()
    if path is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            testcase.fail(message)
        raise SkipTest(message)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Watch(protocol.ProcessProtocol):
    def __init__(self):
        self.ready = defer.Deferred()
        self.ended = defer.Deferred()
        self.output = b""

    def outReceived(self, data):
        self.output += data
        if not self.ready.called and b"eady to accept connections" in self.output:
            self.ready.callback(None)

    errReceived = outReceived

    def processEnded(self, reason):
        if not self.ready.called:
            self.ready.errback(RuntimeError("redis-server exited: " + self.output.decode(
                "utf-8", "replace")[-500:]))
        self.ended.callback(None)


class RedisServer:
    """One redis-server process (``url``, ``start``, ``kill``, ``pause``, ``resume``)."""

    def __init__(self, testcase, password=None, tls=None):
        self.path = require_redis(testcase)
        self.port = free_port()
        self.password = password
        #: ``{"cert": path, "key": path}``: serve TLS only (``rediss://``)
        self.tls = tls
        self._watch = None
        self.process = None
        testcase.addCleanup(self.stop)

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def start(self):
        """Fires when it accepts connections."""
        args = [self.path, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--loglevel", "notice"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            args[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            args += ["--tls-cert-file", self.tls["cert"], "--tls-key-file", self.tls["key"],
                     "--tls-ca-cert-file", self.tls["cert"], "--tls-auth-clients", "no"]
        self._watch = watch = _Watch()
        self.process = reactor.spawnProcess(watch, self.path, args, env=os.environ.copy())
        timeout = reactor.callLater(10, lambda: watch.ready.called or self.process.signalProcess(
            "KILL"))
        return watch.ready.addBoth(lambda r: (timeout.active() and timeout.cancel(), r)[1])

    @defer.inlineCallbacks
    def command(self, *args):
        """Run one command on a connection of its own (closed after)."""
        import txredisapi

        conn = yield txredisapi.Connection("127.0.0.1", self.port, reconnect=False,
                                           password=self.password, convertNumbers=False)
        try:
            result = yield conn.execute_command(*args)
        finally:
            yield conn.disconnect()
        return result

    def _signal(self, name):
        if self.process is not None and self.process.pid is not None:
            try:
                self.process.signalProcess(name)
            except error.ProcessExitedAlready:
                pass

    def kill(self):
        """SIGKILL; fires when it is gone."""
        self._signal("KILL")
        return self._ended()

    def pause(self):
        """SIGSTOP: connections stay open, nothing is answered (half-open)."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def _ended(self):
        if self._watch is None or self._watch.ended.called:
            return defer.succeed(None)
        d = defer.Deferred()
        self._watch.ended.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def stop(self):
        if self.process is not None and self.process.pid is not None:
            try:
                os.kill(self.process.pid, signal.SIGCONT)
            except OSError:
                pass
        return self.kill()
