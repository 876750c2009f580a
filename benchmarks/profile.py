#!/usr/bin/env python3
"""Sample one benchmark server with py-spy while it is under load.

Usage (from the repository root; needs ``pip install py-spy`` and root or
ptrace permission)::

    python benchmarks/profile.py pyliteflux_app.py hello      # wrk GET /hello
    python benchmarks/profile.py twisted_web.py hello
    python benchmarks/profile.py pyliteflux_app.py echo --tcp 100
    python benchmarks/profile.py pyliteflux_app.py hello --top 60 --seconds 8

The server runs pinned to core 0, the load and py-spy on core 1. Prints the
request rate, then the hottest frames by self time and by inclusive time
(percent of samples, ``function (file:line)``); ``--raw FILE`` keeps the
collapsed stacks (feed them to a flame-graph tool).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402


def aggregate(path: str, top: int) -> str:
    self_c: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            if not n.isdigit():
                continue
            count = int(n)
            total += count
            frames = stack.split(";")
            for frame in set(frames):
                incl[frame] += count
            self_c[frames[-1]] += count
    out = [f"samples: {total}", "== self"]
    out += [f"{100 * v / total:5.1f}% {k}" for k, v in self_c.most_common(top)]
    out.append("== inclusive")
    out += [f"{100 * v / total:5.1f}% {k}" for k, v in incl.most_common(top)]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("script")
    p.add_argument("mode")
    p.add_argument("--url", default="/hello")
    p.add_argument("--tcp", type=int, default=0, help="TCP echo with this many connections")
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--raw")
    args = p.parse_args()
    kind = "tcp" if args.tcp else "wrk"
    case = run.Case("profile", "profile", args.script, args.mode, kind, url=args.url,
                    conns=args.tcp or 50)
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw or os.path.join(tmp, "stacks.txt")
        server = run.ServerProcess(case, tmp)
        try:
            spy = subprocess.Popen(["taskset", "-c", "1", "py-spy", "record", "-p",
                                    str(server.pid), "-r", str(args.rate), "-d",
                                    str(args.seconds + 1), "-f", "raw", "-o", raw,
                                    "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            ns = argparse.Namespace(duration=args.seconds, warmup=0.5)
            if kind == "tcp":
                result = run.run_tcp(case, server.tcp_port, ns)
            else:
                result = run.run_wrk(case, server.http_port, ns, tmp)
            spy.wait(60)
        finally:
            server.stop()
        print(f"rate during profile: {result['value']:,.0f}/s (sampling slows it down)")
        print(aggregate(raw, args.top))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
