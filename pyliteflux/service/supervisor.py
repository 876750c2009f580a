"""The supervisor of ``workers > 1`` (SPEC §15): shared listeners, N workers.

``Supervisor`` is a ``twisted.application`` service (what ``twistd
pyliteflux --workers N`` runs; ``python -m pyliteflux`` and ``server.run()``
run it with ``run_supervisor``). Starting, it

1. opens every listener once, from the app's endpoint strings, and never
   accepts on them (``adopted.open_shared``);
2. starts N workers with ``reactor.spawnProcess``: the same command as
   itself, the listening sockets and one end of a socket pair (the AMP
   control connection, ``push.fanout.SupervisorControl``) passed as
   ``childFDs``, and ``PYLITEFLUX_WORKER_*`` in their environment
   (``service.worker``).

Then it relays pushes and presence between the workers (``push.fanout``)
and supervises them:

- a worker that dies is logged (exit code or signal) and restarted after a
  backoff (0.25 s, doubling per death of that worker within a minute, at
  most 8 s); more than ``crash_limit`` deaths within ``crash_window``
  seconds is a crash loop: it stops restarting, shuts down and exits 1;
- stopping (SIGTERM, SIGINT) closes its copies of the sockets, tells every
  worker to shut down gracefully (``Stop``: SPEC §11 in each) and fires
  when all have exited (SIGKILL for any still alive after
  ``shutdown_timeout`` + 5 s);
- SIGHUP restarts the workers one by one: a new one starts, and only once
  it is ready does the old one drain and exit, so the port never refuses.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any, Callable, Dict, List, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..push.fanout import Directory, SupervisorControl
from ..push.local import default_node_id
from .adopted import family_of, open_shared
from .balance import AcceptLedger
from .listeners import Listening, describe_port
from .runner import TwistdLogging, run_until_stopped
from .worker_logs import RELAY_ENV, LogRelay, relay_needed

__all__ = ["Supervisor", "CrashLoop", "run_supervisor", "script_command", "describe_exit"]

_log = Logger(namespace="pyliteflux.supervisor")


class CrashLoop(RuntimeError):
    """Workers died too often: the supervisor gave up."""


def script_command() -> List[str]:
    """The command line this process was started with (what its workers run)."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    argv[0] = sys.executable
    return argv


def describe_exit(reason: Failure) -> str:
    """``exit code 3`` / ``killed by signal SIGKILL`` for a process's end."""
    value = reason.value
    sig = getattr(value, "signal", None)
    if sig:
        try:
            return f"killed by signal {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    code = getattr(value, "exitCode", None)
    return f"exit code {code}"


class _Worker(ProcessProtocol):
    """One worker process: its number, pid, control connection and fate."""

    def __init__(self, supervisor: "Supervisor", worker_id: int) -> None:
        self.supervisor = supervisor
        self.worker_id = worker_id
        self.pid: Optional[int] = None
        self.control: Optional[SupervisorControl] = None
        self.started = 0.0
        self.retiring = False
        self.ready: Deferred[int] = Deferred()
        #: fires with how it ended (``describe_exit``)
        self.exited: Deferred[str] = Deferred()
        #: its output into the supervisor's log, when the supervisor's stdout
        #: goes nowhere (``worker_logs``)
        self.relay: Optional[LogRelay] = None

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if self.relay is not None:
            self.relay.received(childFD, data)

    def processEnded(self, reason: Failure) -> None:
        if self.relay is not None:
            self.relay.flush()
        if not self.ready.called:
            self.ready.errback(RuntimeError(f"worker {self.worker_id} {describe_exit(reason)} "
                                            "before it was ready"))
            self.ready.addErrback(lambda f: None)
        try:
            self.supervisor._ended(self, reason)
        finally:
            self.exited.callback(describe_exit(reason))

    def stop(self) -> None:
        """Graceful: ``Stop`` over the control connection, else SIGTERM."""
        self.retiring = True
        if self.control is None or not self.control.stop_worker():
            self.signal("TERM")

    def signal(self, name: str) -> None:
        transport: Any = self.transport
        try:
            if transport is not None:
                transport.signalProcess(name)
        except Exception:  # already gone
            pass


class _ControlFactory(Factory):
    noisy = False

    def __init__(self, proto: SupervisorControl) -> None:
        self.proto = proto

    def buildProtocol(self, addr: Any) -> SupervisorControl:
        return self.proto


class Supervisor(TwistdLogging, Service):
    """Shares the listeners of ``endpoints`` with ``config.workers`` workers
    running ``command`` (see the module docstring)."""

    crash_limit = 10
    crash_window = 60.0
    backoff_base = 0.25
    backoff_max = 8.0
    ready_timeout = 30.0

    def __init__(self, endpoints: Dict[str, List[str]], config: Any, command: List[str],
                 reactor: Callable[[], Any], workers: Optional[int] = None,
                 environ: Optional[Dict[str, str]] = None) -> None:
        self.endpoints = endpoints
        self.config = config
        self.command = command
        self._reactor = reactor
        self.count = workers if workers is not None else config.workers
        self.environ = dict(os.environ if environ is None else environ)
        #: "<hostname>-<pid>" by default, once started (twistd forks before that)
        self.node_id: str = config.node_id or ""
        self.directory = Directory()
        self.ports: List[Any] = []  # (side, desc, port)
        self.workers: Dict[int, _Worker] = {}
        self.failure: Optional[Failure] = None
        self.stopping = False
        self._deaths: List[float] = []
        self._slot_deaths: Dict[int, List[float]] = {}
        self._restarts: Dict[int, Any] = {}
        self._listening: Deferred[Listening] = Deferred()
        #: per worker number, fires when it is ready for the first time
        self._first_ready: Dict[int, Deferred[int]] = {}
        self._reloading = False
        self._old_hup: Any = None
        #: called once when the supervisor gives up (a crash loop)
        self.on_failure: Callable[[], Any] = lambda: None
        #: the ``metrics_endpoint`` listener (``observability.workers``), if set
        self.monitor: Any = None
        #: relay the workers' output into this process's log (``worker_logs``)
        self.relay_logs = False
        #: the workers' accept ledger (``service.balance``; None without memfd)
        self.ledger: Optional[AcceptLedger] = None
        self.setName("supervisor")

    # -- starting ------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.node_id = self.node_id or default_node_id()
        self.relay_logs = relay_needed()
        if self.ledger is None:
            self.ledger = AcceptLedger.create(self.count)
        self._start_monitor()
        reactor = self._reactor()
        opened = [(side, desc, open_shared(reactor, desc))
                  for side, descs in self.endpoints.items() for desc in descs]
        d = gatherResults([o[2] for o in opened], consumeErrors=True)

        def listening(ports: List[Any]) -> Deferred[Any]:
            self.ports = [(side, desc, port) for (side, desc, _), port in zip(opened, ports, strict=True)]
            for side, _desc, port in self.ports:
                _log.info("{side} listening on {where} (shared by {n} workers)",
                          side=side.upper(), where=describe_port(port), n=self.count)
            self._first_ready = {n: Deferred() for n in range(self.count)}
            for n in range(self.count):
                self.workers[n] = self._spawn(n)
            self._install_hup()
            return gatherResults(list(self._first_ready.values()))

        def ready(_: Any) -> None:
            result = Listening()
            for side, _desc, port in self.ports:
                result.ports.setdefault(side, []).append(port)
            _log.info("{n} workers ready", n=self.count)
            if not self._listening.called:
                self._listening.callback(result)

        def failed(failure: Failure) -> None:
            failure = failure.value.subFailure if hasattr(failure.value, "subFailure") \
                else failure
            _log.error("cannot listen: {why}", why=failure.getErrorMessage())
            for _side, _desc, port in opened:
                port.addCallbacks(lambda p: p and p.stopListening(), lambda f: None)
            if not self._listening.called:
                self._listening.errback(failure)

        d.addCallback(listening)
        d.addCallback(ready)
        d.addErrback(failed)

    def _start_monitor(self) -> None:
        """``metrics_endpoint``: served here, merged from every worker's metrics."""
        if not self.config.metrics_endpoint:
            return
        from ..observability.endpoint import MetricsListener
        from ..observability.workers import SupervisorMetrics, SupervisorReadiness

        self.monitor = MetricsListener(self.config.metrics_endpoint,
                                       SupervisorMetrics(self, self._reactor),
                                       SupervisorReadiness(self, self._reactor), self._reactor,
                                       lambda: self.config.info)
        self.monitor.startService()

    def listening(self) -> Deferred[Listening]:
        """Fires with the shared ports once every worker has reported ready;
        errbacks if a listener cannot be opened (or on a crash loop)."""
        d: Deferred[Listening] = Deferred()

        def relay(result: Any) -> Any:
            d.callback(result) if not isinstance(result, Failure) else d.errback(result)
            return result

        self._listening.addBoth(relay)
        self._listening.addErrback(lambda f: None)
        return d

    def _spawn(self, n: int) -> _Worker:
        reactor = self._reactor()
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child_fds: Dict[int, Any] = {0: "w", 1: 1, 2: 2, 3: child_end.fileno()}
        if self.relay_logs:  # a daemonized twistd's stdout is /dev/null
            child_fds[1] = child_fds[2] = "r"
        listeners = []
        for fd, (side, desc, port) in enumerate(self.ports, 4):
            child_fds[fd] = port.fileno()
            listeners.append([side, desc, fd, family_of(port)])
        ledger_fd = 4 + len(self.ports)
        if self.ledger is not None:  # who accepted how many (service.balance)
            child_fds[ledger_fd] = self.ledger.fd
        import json

        env = dict(self.environ)
        env.update(PYLITEFLUX_WORKER_ID=str(n), PYLITEFLUX_WORKER_FDS=json.dumps(listeners),
                   PYLITEFLUX_WORKER_CONTROL="3", PYLITEFLUX_WORKER_NODE=self.node_id,
                   PYLITEFLUX_WORKER_PARENT=str(os.getpid()))
        worker = _Worker(self, n)
        if self.ledger is not None:
            env["PYLITEFLUX_WORKER_LEDGER"] = f"{ledger_fd}:{self.count}"
        if self.relay_logs:
            env[RELAY_ENV] = "json"
            worker.relay = LogRelay(n)
        worker.started = reactor.seconds()
        try:
            transport = reactor.spawnProcess(worker, self.command[0], self.command, env=env,
                                             childFDs=child_fds)
        finally:
            child_end.close()
        worker.pid = transport.pid
        control = SupervisorControl(self.directory, f"{self.node_id}/{n}",
                                    on_ready=lambda c, pid: self._ready(worker, pid))
        worker.control = control
        try:
            reactor.adoptStreamConnection(parent_end.fileno(), socket.AF_UNIX,
                                          _ControlFactory(control))
        finally:
            parent_end.close()
        _log.info("worker {n} started (pid {pid})", n=n, pid=worker.pid)
        return worker

    def _ready(self, worker: _Worker, pid: int) -> None:
        _log.info("worker {n} ready (pid {pid})", n=worker.worker_id, pid=pid)
        if not worker.ready.called:
            worker.ready.callback(pid)
        first = self._first_ready.get(worker.worker_id)
        if first is not None and not first.called:
            first.callback(pid)

    # -- deaths and restarts ---------------------------------------------------------------

    def _ended(self, worker: _Worker, reason: Failure) -> None:
        n, how = worker.worker_id, describe_exit(reason)
        current = self.workers.get(n) is worker
        if self.stopping or worker.retiring or not current:
            clean = reason.check(ProcessDone) is not None
            (_log.info if clean else _log.warn)("worker {n} (pid {pid}) exited: {how}",
                                                n=n, pid=worker.pid, how=how)
            return
        assert reason.check(ProcessDone, ProcessTerminated) is not None
        now = self._reactor().seconds()
        self._deaths = [t for t in self._deaths if now - t < self.crash_window] + [now]
        slot = [t for t in self._slot_deaths.get(n, []) if now - t < self.crash_window] + [now]
        self._slot_deaths[n] = slot
        if len(self._deaths) > self.crash_limit:
            message = (f"workers are crash-looping: {len(self._deaths)} deaths within "
                       f"{self.crash_window:g} s (last: worker {n} {how}); not restarting")
            _log.critical("{message}", message=message)
            self.failure = Failure(CrashLoop(message))
            del self.workers[n]
            if not self._listening.called:
                self._listening.errback(self.failure)
            self.on_failure()
            self._give_up()
            return
        delay = min(self.backoff_base * 2 ** (len(slot) - 1), self.backoff_max)
        _log.error("worker {n} (pid {pid}) died: {how}; restarting in {delay:g} s",
                   n=n, pid=worker.pid, how=how, delay=delay)
        self._restarts[n] = self._reactor().callLater(delay, self._restart, n)

    def _restart(self, n: int) -> None:
        self._restarts.pop(n, None)
        if not self.stopping:
            self.workers[n] = self._spawn(n)

    def _give_up(self) -> None:
        reactor = self._reactor()
        if reactor.running:
            reactor.stop()  # the "before shutdown" trigger stops this service

    # -- SIGHUP: one by one --------------------------------------------------------------

    def _install_hup(self) -> None:
        reactor = self._reactor()
        try:
            self._old_hup = signal.signal(
                signal.SIGHUP, lambda signum, frame: reactor.callFromThread(self.reload))
        except ValueError:  # not the main thread (tests driving it from one)
            self._old_hup = None

    def reload(self) -> Deferred[None]:
        """Restart every worker, one at a time, without refusing a connection."""
        if self._reloading or self.stopping:
            return succeed(None)
        self._reloading = True
        _log.info("SIGHUP: restarting {n} workers one by one", n=len(self.workers))
        d = Deferred.fromCoroutine(self._reload())

        def done(result: Any) -> None:
            self._reloading = False
            if isinstance(result, Failure):
                _log.failure("restarting workers failed", result)

        return d.addBoth(done)

    async def _reload(self) -> None:
        reactor = self._reactor()
        for n in sorted(self.workers):
            if self.stopping:
                return
            old = self.workers.get(n)
            new = self._spawn(n)
            try:
                await new.ready.addTimeout(self.ready_timeout, reactor)
            except Exception as exc:
                _log.error("worker {n}: the new process is not ready ({why}); keeping the "
                           "old one and stopping the restart", n=n, why=exc)
                new.retiring = True
                new.signal("KILL")
                return
            self.workers[n] = new
            if old is not None and not old.exited.called:
                old.stop()
                await old.exited
        _log.info("SIGHUP: every worker restarted")

    # -- stopping ------------------------------------------------------------------------

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        self.stopping = True
        if self._old_hup is not None:
            signal.signal(signal.SIGHUP, self._old_hup)
            self._old_hup = None
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        reactor = self._reactor()
        for _side, _desc, port in self.ports:  # the workers hold their own copies
            port.stopListening()
        self.ports = []
        alive = [w for w in self.workers.values() if not w.exited.called]
        if alive:
            _log.info("stopping {n} workers gracefully", n=len(alive))
        for worker in alive:
            worker.stop()
        grace = self.config.shutdown_timeout + 5.0
        kill = reactor.callLater(grace, self._kill, alive)
        d = gatherResults([w.exited for w in alive])

        def done(_: Any) -> Any:
            if kill.active():
                kill.cancel()
            _log.info("every worker has exited")
            monitor, self.monitor = self.monitor, None
            return monitor.stopService() if monitor is not None else None

        return d.addCallback(done)

    def _kill(self, workers: List[_Worker]) -> None:
        for worker in workers:
            if not worker.exited.called:
                _log.warn("worker {n} (pid {pid}) still running after the shutdown timeout; "
                          "killing it", n=worker.worker_id, pid=worker.pid)
                worker.signal("KILL")


def run_supervisor(supervisor: Supervisor, reactor: Any) -> int:
    """Run ``supervisor`` in the foreground until stopped; the exit status
    (1 when a listener could not be opened or the workers crash-looped)."""
    failure = run_until_stopped(supervisor, reactor)
    failure = failure or supervisor.failure
    if failure is not None:
        sys.stderr.write(f"pyliteflux: error: {failure.getErrorMessage()}\n")
        return 1
    return 0
