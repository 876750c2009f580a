#!/usr/bin/env python3
"""Python cost of one HTTP request, in process: no sockets, no load generator.

    python benchmarks/per_request_cost.py [--rounds 15] [--requests 10000] [--profile hello]

Feeds ``GET /hello`` (keep-alive, one request at a time) straight into a
Site's channel over an in-memory transport and times the CPU per request,
for the bare ``twisted.web`` resource of ``servers/twisted_web.py``,
pyliteflux, pyliteflux with the two middlewares of
``servers/pyliteflux_app.py``, and pyliteflux counting SPEC §16's metrics
(``pyliteflux+metrics``; its cost against ``pyliteflux`` is printed last). Rounds are interleaved and the minimum is
kept (noise only ever adds time), so the ratio moves far less between runs
than the wrk figures of ``run.py`` on a shared machine. It is a diagnostic
for hot-path work, not a replacement for ``run.py``: it leaves out the
reactor, the kernel and the client.

``--profile NAME`` also prints the cProfile of that server's requests
(sorted by own time) and its Python calls per request.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# benchmarks/profile.py would shadow the standard library's profile module
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable, Dict, List  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "servers"))
sys.path.insert(0, os.path.dirname(HERE))

from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

REQUEST = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
EXPECTED = b'{"message": "Hello, World!"}'


def bare_site() -> Any:
    from _common import QuietSite
    from twisted_web import Hello

    return QuietSite(Hello(), reactor=Clock())


def pyliteflux_site(middlewares: bool, engine: str = "twisted",
                    metrics: bool = False) -> Callable[[], Any]:
    def make() -> Any:
        from pyliteflux_app import ReadUser, SetUser

        from pyliteflux import Router, Server
        from pyliteflux.adapters import http_factory

        server = Server(router=Router(), info=False, http_engine=engine)
        server.route("/hello")(lambda request: {"message": "Hello, World!"})
        if middlewares:
            server.add_middleware(SetUser())
            server.add_middleware(ReadUser())
        if metrics:
            server.enable_metrics()  # what metrics_endpoint does, before the Site is built
        # as Server.site() builds it, on a clock instead of the global reactor
        return http_factory(server.adapter_context, reactor=Clock())

    return make


SERVERS: Dict[str, Callable[[], Any]] = {
    "twisted.web": bare_site,
    "pyliteflux": pyliteflux_site(False),
    "pyliteflux+2mw": pyliteflux_site(True),
    "pyliteflux+metrics": pyliteflux_site(False, metrics=True),
    "llhttp": pyliteflux_site(False, "llhttp"),
    "llhttp+2mw": pyliteflux_site(True, "llhttp"),
}


class Connection:
    """One keep-alive connection into ``site`` over an in-memory transport."""

    def __init__(self, site: Any) -> None:
        self.channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        self.channel.dataReceived(REQUEST)
        reply = self.transport.value()
        if not (reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(EXPECTED)):
            raise SystemExit(f"unexpected reply: {reply!r}")
        self.transport.clear()

    def run(self, n: int) -> float:
        """CPU microseconds per request over ``n`` requests."""
        feed, clear = self.channel.dataReceived, self.transport.clear
        start = time.process_time()
        for _ in range(n):
            feed(REQUEST)
            clear()
        return (time.process_time() - start) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--requests", type=int, default=10000, help="requests per round")
    p.add_argument("--profile", choices=sorted(SERVERS), help="also profile this server")
    args = p.parse_args()

    conns = {name: Connection(make()) for name, make in SERVERS.items()}
    for conn in conns.values():
        conn.run(args.requests // 4)  # warm up
    samples: Dict[str, List[float]] = {name: [] for name in conns}
    for _ in range(args.rounds):
        for name, conn in conns.items():
            samples[name].append(conn.run(args.requests))
    ref = min(samples["twisted.web"])
    print(f"{'server':<16} {'min µs/req':>10} {'median':>8} {'ratio':>6}")
    for name, values in samples.items():
        values.sort()
        print(f"{name:<16} {values[0]:>10.2f} {values[len(values) // 2]:>8.2f} "
              f"{ref / values[0]:>6.2f}")
    print("(ratio = bare twisted.web's minimum / this minimum; higher is better)")
    off, on = min(samples["pyliteflux"]), min(samples["pyliteflux+metrics"])
    print(f"metrics on / off: {off / on:.3f} of the speed ({on - off:+.2f} µs per request)")

    if args.profile:
        conn = conns[args.profile]
        n = args.requests
        profiler = cProfile.Profile()
        profiler.enable()
        conn.run(n)
        profiler.disable()
        stats = pstats.Stats(profiler)
        calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
        print(f"\n{args.profile}: {calls / n:.0f} Python calls per request")
        stats.sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
