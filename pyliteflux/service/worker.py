"""One worker process of a supervisor (SPEC §15): the whole app, on shared sockets.

A worker is started by the supervisor (``service.supervisor``) with the
same command as the supervisor itself (``python -m pyliteflux ...``, or the
user's script ending in ``server.run()``) and is told by its environment
that it is a worker:

- ``PYLITEFLUX_WORKER_ID``: its number, 0..N-1 (``server.worker_id``);
- ``PYLITEFLUX_WORKER_FDS``: JSON ``[[side, endpoint, fd, family], ...]``,
  the listening sockets it inherited;
- ``PYLITEFLUX_WORKER_CONTROL``: the descriptor of its AMP control
  connection (a socket pair) to the supervisor;
- ``PYLITEFLUX_WORKER_NODE``: the supervisor's node id (the worker is
  ``"<node>/<n>"``); ``PYLITEFLUX_WORKER_PARENT``: the supervisor's pid.

The worker adopts the sockets (``adopted.AdoptedListenerService``), relays
pushes through the supervisor (``push.relay.RelayBackend``) when the push
backend is local, and shuts down gracefully when told (``Stop``, SIGTERM)
or when its control connection closes: no worker outlives its supervisor.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

from twisted.internet.protocol import Factory
from twisted.logger import Logger, LogLevel

from ..push.relay import Ready, RelayBackend, WorkerControl
from . import balance
from .runner import run_until_stopped
from .worker_logs import start_worker_logging

__all__ = ["WorkerEnvironment", "worker_environment", "run_worker", "start_worker_logging",
           "WORKER_ENV"]

_log = Logger(namespace="pyliteflux.worker")

#: the environment variables a supervisor sets for its workers
WORKER_ENV = ("PYLITEFLUX_WORKER_ID", "PYLITEFLUX_WORKER_FDS", "PYLITEFLUX_WORKER_CONTROL",
              "PYLITEFLUX_WORKER_NODE", "PYLITEFLUX_WORKER_PARENT", "PYLITEFLUX_WORKER_LEDGER")


class WorkerEnvironment:
    """What the supervisor told this worker (see the module docstring)."""

    def __init__(self, worker_id: int, listeners: List[Tuple[str, str, int, str]],
                 control_fd: int, node_id: str, parent: int,
                 ledger: Optional[Tuple[int, int]] = None) -> None:
        self.worker_id = worker_id
        self.listeners = listeners
        self.control_fd = control_fd
        self.node_id = node_id
        self.parent = parent
        #: (descriptor, workers) of the accept ledger (``service.balance``), if any
        self.ledger = ledger

    @property
    def endpoints(self) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {"http": [], "tcp": []}
        for side, desc, _fd, _family in self.listeners:
            out.setdefault(side, []).append(desc)
        return out

    @property
    def adopted(self) -> Dict[str, List[Tuple[int, str]]]:
        out: Dict[str, List[Tuple[int, str]]] = {}
        for side, _desc, fd, family in self.listeners:
            out.setdefault(side, []).append((fd, family))
        return out


def worker_environment(environ: Optional[Mapping[str, str]] = None
                       ) -> Optional[WorkerEnvironment]:
    """This process's worker environment, or None when it is not a worker."""
    environ = os.environ if environ is None else environ
    if "PYLITEFLUX_WORKER_ID" not in environ:
        return None
    try:
        listeners = [(str(side), str(desc), int(fd), str(family))
                     for side, desc, fd, family in json.loads(environ["PYLITEFLUX_WORKER_FDS"])]
        ledger_spec = environ.get("PYLITEFLUX_WORKER_LEDGER")
        ledger = None
        if ledger_spec:
            fd, workers = (int(x) for x in ledger_spec.split(":"))
            ledger = (fd, workers)
        return WorkerEnvironment(int(environ["PYLITEFLUX_WORKER_ID"]), listeners,
                                 int(environ["PYLITEFLUX_WORKER_CONTROL"]),
                                 environ["PYLITEFLUX_WORKER_NODE"],
                                 int(environ.get("PYLITEFLUX_WORKER_PARENT", "0")), ledger)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"bad worker environment (set by a pyliteflux supervisor): {exc}") \
            from None


def die_with_parent() -> None:
    """Linux: ask for SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``),
    besides watching the control connection. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _ControlFactory(Factory):
    noisy = False

    def __init__(self, proto: WorkerControl) -> None:
        self.proto = proto

    def buildProtocol(self, addr: Any) -> WorkerControl:
        return self.proto


def _join_ledger(env: WorkerEnvironment, reactor: Any) -> None:
    """This worker's slot in the supervisor's accept ledger (``service.balance``)."""
    if env.ledger is None:
        return
    fd, workers = env.ledger
    try:
        ledger = balance.AcceptLedger(fd, workers, env.worker_id)
        os.close(fd)  # the mapping stays
    except OSError as exc:
        _log.warn("no accept ledger ({why}): new connections go to whichever worker "
                  "wakes first", why=exc)
        return
    ledger.join()
    balance.use(ledger)
    from twisted.internet.task import LoopingCall

    beat = LoopingCall(ledger.beat)
    beat.clock = reactor
    reactor.callWhenRunning(beat.start, balance.BEAT, now=True)


def run_worker(server: Any, env: WorkerEnvironment, reactor: Any = None) -> int:
    """Serve ``server`` as worker ``env.worker_id`` until stopped; the exit status.

    ``server`` is the app's ``Server`` as this process built it (the same
    code, config file, environment and options as the supervisor's).
    """
    die_with_parent()
    if env.parent and os.getppid() != env.parent:
        return 0  # the supervisor is already gone
    if reactor is None:
        reactor = server.reactor
    config = server.config
    start_worker_logging(env.worker_id, LogLevel.info if config.info else LogLevel.warn,
                         config.log_format)
    server.worker_id = env.worker_id
    node_id = f"{env.node_id}/{env.worker_id}"
    config.node_id = node_id
    backend: Optional[RelayBackend] = None
    if config.push_backend == "local":
        backend = RelayBackend(node_id)
        server.hub.backend = backend
        backend.attach(server.hub)
    if config.metrics_endpoint:  # the supervisor serves it, asking each worker (Scrape)
        server.enable_metrics()
        config.metrics_endpoint = None
    _join_ledger(env, reactor)
    service = server.make_service(endpoints=env.endpoints, adopted=env.adopted)
    service.owns_reactor = True
    stopping: List[bool] = []

    def stop() -> None:
        if not stopping:
            stopping.append(True)
            server.stop()

    def lost() -> None:
        if not stopping:
            _log.warn("worker {n}: the supervisor is gone; shutting down", n=env.worker_id)
            stop()

    control = WorkerControl(backend, stop, lost)
    if server.metrics is not None:
        control.metrics = server.metrics.exposition
    from ..observability.endpoint import Readiness

    control.health = Readiness(service, server.hub)
    if backend is not None:
        backend.control = control

    def connect() -> None:
        try:
            reactor.adoptStreamConnection(env.control_fd, socket.AF_UNIX,
                                          _ControlFactory(control))
        finally:
            os.close(env.control_fd)

    def ready(_: Any) -> None:
        if control.connected:
            control.callRemote(Ready, pid=os.getpid()).addErrback(lambda f: None)

    def shutting_down() -> None:
        stopping.append(True)
        # a second SIGTERM (PR_SET_PDEATHSIG, the supervisor's Stop, a Ctrl-C
        # to the whole process group) must not stop a reactor already stopping
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)

    def own_signals() -> None:
        # SIGTERM/SIGINT often come with a Stop (a Ctrl-C or `pkill` reaches the
        # whole group; PR_SET_PDEATHSIG): one graceful stop for all, instead of
        # Twisted's handler stopping a reactor that is already stopping
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: reactor.callFromThread(stop))

    reactor.addSystemEventTrigger("before", "shutdown", shutting_down)
    reactor.callWhenRunning(own_signals)
    reactor.callWhenRunning(connect)
    service.listening().addCallbacks(ready, lambda f: None)
    failure = run_until_stopped(service, reactor)
    if failure is not None:
        _log.critical("worker {n} cannot serve: {why}", n=env.worker_id,
                      why=failure.getErrorMessage())
        return 1
    return 0
