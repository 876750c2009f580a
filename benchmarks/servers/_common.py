"""Shared bits of the benchmark servers: argument parsing and a quiet Site."""

from __future__ import annotations

import argparse
import resource
import sys

from twisted.web import server

HELLO = b'{"message": "Hello, World!"}'
PUSH_MESSAGE = "broadcast"


def raise_nofile() -> None:
    """Raise the soft open-files limit to the hard one (fan-out needs 10k+ fds)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse(modes: tuple) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=modes)
    p.add_argument("--port", type=int, required=True, help="HTTP port (or the only port)")
    p.add_argument("--tcp-port", type=int, default=0)
    args = p.parse_args()
    raise_nofile()
    return args


class QuietSite(server.Site):
    """``twisted.web`` Site without an access log.

    By default a Site writes a combined-log line per request to the legacy
    log (buffered in memory when nothing observes it). Every server in the
    suite runs with its access log off, so that is not what is compared.
    """

    noisy = False

    def log(self, request):  # noqa: D102
        pass


def ready(port: int) -> None:
    print(f"ready {port}", flush=True)
    sys.stdout.flush()
