#!/usr/bin/env python3
"""WebSocket benchmarks (SPEC §14), side by side in one run.

    python benchmarks/ws_bench.py                          # the full run
    python benchmarks/ws_bench.py --duration 2 --fanout 1000 --rounds 3   # short

1. Round trips at ``--conns`` (100) WebSocket connections, one JSON message
   in flight per connection: a bare autobahn echo server
   (``servers/ws_echo.py``, reference) vs pyliteflux's ``echo`` command over
   ``/ws`` (``servers/pyliteflux_ws.py``). Target: >= 0.9 of bare autobahn.
   Measured interleaved for ``--rounds`` rounds; the ratio is the median of
   the paired per-round ratios.
2. One push to ``--fanout`` (10,000) idle clients, from the HTTP request that
   triggers it until every client has the message: WebSocket clients vs TCP
   keep-alive clients of the same server, in the same run. Target: WebSocket
   under 2x the TCP time.
3. Server RSS per idle WebSocket client (and per idle TCP client).

Servers are pinned to core 0 and this client to core 1 when ``taskset``
exists; everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = os.path.join(HERE, "servers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(script: str, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, os.path.join(SERVERS, script), *args]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if "ready" not in line:
        raise SystemExit(f"{script} did not start")
    return proc


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def server_pid(proc: subprocess.Popen) -> int:
    """The Python server's pid (under taskset it is the same process: exec)."""
    return proc.pid


# -- a minimal blocking WebSocket client ---------------------------------------------

KEY = base64.b64encode(b"0123456789abcdef")
MASK = b"\x01\x02\x03\x04"


def client_frame(payload: bytes) -> bytes:
    n = len(payload)
    head = b"\x81" + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def ws_connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
              % (port, KEY))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("handshake refused")
        data += chunk
    if b" 101 " not in data.split(b"\r\n", 1)[0]:
        raise SystemExit(f"handshake answered {data[:60]!r}")
    return s


def round_trips(port: int, conns: int, duration: float) -> float:
    """Messages per second with one in flight per connection (replies are
    small, so one recv() holds a whole frame)."""
    socks = [ws_connect(port) for _ in range(conns)]
    msg = client_frame(json.dumps({"command": "echo", "data": {"n": 1, "s": "hello"}}).encode())
    ep = select.epoll()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        by_fd[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
        s.send(msg)
    done = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        for fd, _ in ep.poll(1):
            s = by_fd[fd]
            if not s.recv(65536):
                raise SystemExit("server closed a connection")
            done += 1
            s.send(msg)
    elapsed = duration
    for s in socks:
        s.close()
    return done / elapsed


def fanout(http_port: int, socks: list, rounds: int, ws: bool) -> list:
    ep = select.epoll()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        by_fd[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    times = []
    for _ in range(rounds):
        got = set()
        t0 = time.perf_counter()
        req = socket.create_connection(("127.0.0.1", http_port))
        req.sendall(b"GET /broadcast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while len(got) < len(socks):
            events = ep.poll(20)
            if not events:
                raise SystemExit(f"timed out: {len(got)}/{len(socks)} got the push")
            for fd, _ in events:
                if not by_fd[fd].recv(65536):
                    raise SystemExit("server closed a connection")
                got.add(fd)  # the push is small: one recv() is the whole of it
        times.append((time.perf_counter() - t0) * 1000)
        req.close()
        time.sleep(0.3)
    ep.close()
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--fanout", type=int, default=10000)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    results: dict = {}

    # 1. round trips, interleaved
    bare_port, ours_port, ours_tcp = free_port(), free_port(), free_port()
    bare = start("ws_echo.py", "--port", str(bare_port))
    ours = start("pyliteflux_ws.py", "--port", str(ours_port), "--tcp-port", str(ours_tcp))
    try:
        wait_port(bare_port)
        wait_port(ours_port)
        round_trips(bare_port, args.conns, 1.0)  # warm up
        round_trips(ours_port, args.conns, 1.0)
        rows = []
        for r in range(args.rounds):
            order = [("bare", bare_port), ("pyliteflux", ours_port)]
            if r % 2:
                order.reverse()
            figures = {name: round_trips(port, args.conns, args.duration) for name, port in order}
            rows.append(figures)
        ratios = [row["pyliteflux"] / row["bare"] for row in rows]
        results["round_trips"] = {
            "conns": args.conns,
            "bare_autobahn_per_s": statistics.median(r["bare"] for r in rows),
            "pyliteflux_per_s": statistics.median(r["pyliteflux"] for r in rows),
            "ratio_median": statistics.median(ratios),
            "ratios": [round(x, 3) for x in ratios],
        }
    finally:
        stop(bare)
        stop(ours)

    # 2 + 3. fan-out and RSS: WebSocket clients vs TCP clients of one server
    http_port, tcp_port = free_port(), free_port()
    ours = start("pyliteflux_ws.py", "--port", str(http_port), "--tcp-port", str(tcp_port))
    try:
        wait_port(http_port)
        pid = server_pid(ours)
        for kind in ("tcp", "websocket"):
            time.sleep(0.5)
            before = rss_kib(pid)
            if kind == "tcp":
                socks = [socket.create_connection(("127.0.0.1", tcp_port)) for _ in range(args.fanout)]
            else:
                socks = [ws_connect(http_port) for _ in range(args.fanout)]
            time.sleep(1.5)
            after = rss_kib(pid)
            times = fanout(http_port, socks, args.rounds, kind == "websocket")
            results[f"fanout_{kind}"] = {
                "clients": args.fanout,
                "ms_median": statistics.median(times),
                "ms_all": [round(t, 1) for t in times],
                "rss_per_idle_client_kib": round((after - before) / args.fanout, 2),
            }
            for s in socks:
                s.close()
        results["fanout_ratio_ws_over_tcp"] = (results["fanout_websocket"]["ms_median"]
                                               / results["fanout_tcp"]["ms_median"])
    finally:
        stop(ours)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
