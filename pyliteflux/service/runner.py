"""Running a service tree in the foreground until it is stopped.

``server.run()`` and ``python -m pyliteflux`` both come here: start the
service once the reactor runs, stop it gracefully from the reactor's
"before shutdown" trigger (SIGINT, SIGTERM, ``reactor.stop()``), and
report a listener that could not start.
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.python.failure import Failure

__all__ = ["run_until_stopped", "TwistdLogging"]


def run_until_stopped(service: Any, reactor: Any) -> Optional[Failure]:
    """Start ``service`` in ``reactor``, block until the reactor stops, and
    return the failure that stopped it early (a port that cannot be bound),
    or None."""
    failures: List[Failure] = []

    def failed(failure: Failure) -> None:
        failures.append(failure)
        if reactor.running:
            reactor.stop()

    def start() -> None:
        service.startService()
        service.listening().addErrback(failed)

    def stop() -> Any:
        return service.stopService() if service.running else None

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return failures[0] if failures else None


class TwistdLogging:
    """Mixed into a top-level service: ``log_observer`` (set for
    ``log_format = "json"``) becomes twistd's log observer.

    twistd makes the plugin's service a child of its application, then
    starts logging with the application's ``ILogObserver`` if it has one.
    """

    log_observer: Any = None

    def setServiceParent(self, parent: Any) -> None:
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            from twisted.logger import ILogObserver

            parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)  # type: ignore[misc]
