"""``python -m pyliteflux [--app module:attribute] [options]``.

Runs the same service tree as ``twistd -n pyliteflux`` (``tap.Options`` and
``tap.makeService``) in the foreground, logging to stdout; SIGTERM and
SIGINT (Ctrl-C) shut it down gracefully. ``--help`` lists the options.
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional

from twisted.python import usage


def main(argv: Optional[List[str]] = None, reactor: Any = None) -> int:
    """Parse ``argv``, serve until stopped; returns the exit status."""
    from . import tap

    options = tap.Options()
    options.synopsis = "Usage: python -m pyliteflux " + tap.Options.synopsis
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as exc:  # the error alone: --help has the rest
        sys.stderr.write(f"python -m pyliteflux: error: {exc} (see --help)\n")
        return 2
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)

    from .log import start_console_logging
    from .service.runner import run_until_stopped
    from .service.worker import run_worker, worker_environment

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    env = worker_environment()
    if env is not None:  # started by a supervisor (SPEC §15)
        assert options.server is not None
        return run_worker(options.server, env, reactor)
    config = options.server.config if options.server is not None else None
    start_console_logging(log_format=config.log_format if config is not None else "text")
    service = tap.makeService(options)
    if options.server is not None and options.server.config.workers > 1:
        from .service.supervisor import run_supervisor

        return run_supervisor(service, reactor)
    failure = run_until_stopped(service, reactor)
    if failure is not None:
        sys.stderr.write(f"python -m pyliteflux: error: {failure.getErrorMessage()}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
