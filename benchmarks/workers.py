"""Workers (SPEC §15): hello req/s with 1 and 2 workers, and push latency
across workers against within one.

    python benchmarks/workers.py [--duration 10] [--rounds 3] [--pings 1000]

1. ``GET /hello`` driven by ``wrk -t2 -c64`` against ``python -m pyliteflux
   --workers N`` for N = 1 and 2, in interleaved rounds (1, 2, 2, 1, ...).
   Nothing is pinned: the workers need both cores, and wrk shares them, so
   on a 2-core machine expect less than 2x.
2. Push latency: two TCP clients of a 2-worker server; client S sends
   ``ping`` naming client R, the worker holding S pushes to R. The time from
   S's send to R's receipt, for R on the other worker (relayed through the
   supervisor over AMP) and R on the same worker; p50 and p99 of
   ``--pings`` pings each, one at a time.

Prints a table; the issue asks for 2 workers >= 1.5x one, cross p99 < 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Any, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

APP = textwrap.dedent("""
    import os
    from pyliteflux import Router, Server
    router = Router()
    server = Server(router=router, info=False, tcp_keep_alive=True)

    @router.register("/hello", method="GET")
    def hello(request):
        return {"message": "Hello, World!"}

    @router.register("whoami", protocol="tcp")
    def whoami(request):
        return {"pid": os.getpid(), "client_id": request.client_id}

    @router.register("ping", protocol="tcp")
    def ping(request):
        return {"reached": server.push_message("p", request.data)}
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """``python -m pyliteflux --workers N`` on free ports, until stopped."""

    def __init__(self, app_dir: str, workers: int) -> None:
        self.http, self.tcp = free_port(), free_port()
        argv = [sys.executable, "-m", "pyliteflux", "--app", "bench_workers_app:server",
                "-q", "--workers", str(workers),
                "--http", f"tcp:{self.http}:interface=127.0.0.1",
                "--tcp", f"tcp:{self.tcp}:interface=127.0.0.1"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, app_dir]))
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        try:
            self._wait_ready(workers)
        except BaseException:
            self.proc.kill()
            raise

    def _wait_ready(self, workers: int) -> None:
        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout or ()],
                         daemon=True).start()
        deadline = time.monotonic() + 30
        while workers == 1:  # -q: a single process logs nothing; wait for its port
            try:
                socket.create_connection(("127.0.0.1", self.http), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the server with 1 worker did not start") from None
                time.sleep(0.05)
        ready = f"{workers} workers ready"
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if ready in line:
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the server with {workers} worker(s) did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wrk(port: int, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s",
                          f"http://127.0.0.1:{port}/hello"], capture_output=True, text=True,
                         check=True, timeout=seconds + 30).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def hello(app_dir: str, duration: int, rounds: int) -> Dict[int, List[float]]:
    clusters: Dict[int, Cluster] = {}
    figures: Dict[int, List[float]] = {1: [], 2: []}
    try:
        for n in (1, 2):
            clusters[n] = Cluster(app_dir, n)
        for cluster in clusters.values():
            wrk(cluster.http, 1)  # warm up
        for r in range(rounds):
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                figures[n].append(wrk(clusters[n].http, duration))
    finally:
        for cluster in clusters.values():
            cluster.stop()
    return figures


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lines = self.sock.makefile("r", encoding="utf-8")
        self.who = self.call("whoami")

    def send(self, command: str, data: Any = None) -> None:
        self.sock.sendall(json.dumps({"command": command, "data": data}).encode() + b"\n")

    def call(self, command: str, data: Any = None) -> Any:
        self.send(command, data)
        return json.loads(self.lines.readline())


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def push_latency(app_dir: str, pings: int) -> Dict[str, Tuple[float, float]]:
    cluster = Cluster(app_dir, 2)
    try:
        clients: List[Client] = []
        pids: Dict[int, int] = {}
        while len(pids) < 2 or max(pids.values()) < 2:  # one worker holds two clients
            client = Client(cluster.tcp)
            clients.append(client)
            pids[client.who["pid"]] = pids.get(client.who["pid"], 0) + 1
            if len(clients) > 200:
                raise RuntimeError("every connection went to one worker")
        pid = max(pids, key=lambda p: pids[p])
        sender = next(c for c in clients if c.who["pid"] == pid)
        same = next(c for c in clients[1:] if c.who["pid"] == sender.who["pid"])
        other = next(c for c in clients if c.who["pid"] != sender.who["pid"])
        out: Dict[str, Tuple[float, float]] = {}
        for name, receiver in (("same worker", same), ("cross worker", other)):
            samples = []
            for _ in range(pings):
                started = time.perf_counter()
                sender.send("ping", receiver.who["client_id"])
                receiver.lines.readline()
                samples.append((time.perf_counter() - started) * 1000)
                sender.lines.readline()  # the ping's reply
            out[name] = (percentile(samples, 0.5), percentile(samples, 0.99))
        return out
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pings", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as app_dir:
        with open(os.path.join(app_dir, "bench_workers_app.py"), "w") as f:
            f.write(APP)
        figures = hello(app_dir, args.duration, args.rounds)
        latency = push_latency(app_dir, args.pings)
    one, two = (sum(figures[n]) / len(figures[n]) for n in (1, 2))
    print(f"nproc {os.cpu_count()}, {args.rounds} interleaved rounds of {args.duration} s")
    print("| case | req/s (mean) | rounds |")
    print("|---|---|---|")
    for n, mean in ((1, one), (2, two)):
        rounds = ", ".join(f"{x:.0f}" for x in figures[n])
        print(f"| hello, {n} worker{'s' if n > 1 else ''} | {mean:.0f} | {rounds} |")
    print(f"\n2 workers / 1 worker: {two / one:.2f}x")
    print(f"\n| push ({args.pings} pings) | p50 ms | p99 ms |")
    print("|---|---|---|")
    for name, (p50, p99) in latency.items():
        print(f"| {name} | {p50:.3f} | {p99:.3f} |")


if __name__ == "__main__":
    main()
