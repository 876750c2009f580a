"""Slow-client attacks against a local pyliteflux server, with a latency probe.

    python benchmarks/slowloris.py [--seconds 30] [--connections 1000]

Starts a pyliteflux hello server (127.0.0.1, a free port) in a separate
process, measures the latency of normal GET /hello requests while idle,
then runs ``slowhttptest`` (Debian package ``slowhttptest``) in slowloris
mode (-H: headers dripped) and slow-body mode (-B: body dripped), each for
a bounded time, probing latency meanwhile. Prints p50/p99 per phase and
whether every probe was answered. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVER = textwrap.dedent("""
    import sys
    from pyliteflux import Router, Server
    server = Server(router=Router(), info=False, http_port=int(sys.argv[1]),
                    header_timeout=float(sys.argv[2]), min_body_rate=500)
    server.route("/hello", method=["GET", "POST"])(lambda r: {"message": "Hello, World!"})
    server.run(protocol="http")
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_once(port: int) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(data[:80])
    return time.perf_counter() - start


def probe(port: int, seconds: float, interval: float = 0.1):
    latencies, failures = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            latencies.append(probe_once(port))
        except Exception:
            failures += 1
        time.sleep(interval)
    return latencies, failures


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def attack(mode: str, port: int, seconds: int, connections: int) -> subprocess.Popen:
    args = ["slowhttptest", mode, "-c", str(connections), "-r", "200", "-i", "10",
            "-l", str(seconds), "-u", f"http://127.0.0.1:{port}/hello", "-x", "24", "-p", "3"]
    if mode == "-B":
        args += ["-t", "POST", "-s", "8192"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--header-timeout", type=float, default=20)
    args = parser.parse_args()
    if shutil.which("slowhttptest") is None:
        print("slowhttptest not found: apt-get install slowhttptest")
        return 2
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(args.header_timeout)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                probe_once(port)
                break
            except OSError:
                time.sleep(0.1)
        rows = []
        lat, fail = probe(port, 5)
        rows.append(("idle", lat, fail))
        for name, mode in (("slowloris (-H)", "-H"), ("slow body (-B)", "-B")):
            attacker = attack(mode, port, args.seconds, args.connections)
            time.sleep(3)  # let the attack open its connections
            result = {}
            t = threading.Thread(target=lambda: result.update(r=probe(port, args.seconds - 5)))
            t.start()
            t.join()
            attacker.wait(timeout=args.seconds + 30)
            lat, fail = result["r"]
            rows.append((name, lat, fail))
        print(f"{'phase':<16} {'probes':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8}")
        for name, lat, fail in rows:
            print(f"{name:<16} {len(lat):>6} {fail:>6} {pct(lat, .5) * 1000:>8.2f} "
                  f"{pct(lat, .99) * 1000:>8.2f}")
        idle_p99 = pct(rows[0][1], .99)
        ok = all(fail == 0 for _, _, fail in rows)
        worst = max(pct(lat, .99) for _, lat, _ in rows[1:])
        print(f"responsive under attack: {ok}; worst p99 {worst * 1000:.2f} ms "
              f"vs idle p99 {idle_p99 * 1000:.2f} ms; mean idle "
              f"{statistics.mean(rows[0][1]) * 1000:.2f} ms")
        return 0 if ok else 1
    finally:
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
