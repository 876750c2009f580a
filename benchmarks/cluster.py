#!/usr/bin/env python3
"""Push across nodes (SPEC §13), side by side in one run.

Starts its own redis-server (free port, no persistence) and two node
processes of ``examples.cluster`` (``--push-backend redis://...``), then:

1. latency of a push at ``--rate`` pushes/s: ``POST /push`` on a node, the
   line read by a TCP client; same node vs the other node (p50/p99);
2. cross-node pushes/s one node can publish (``GET /burst`` pushes in a loop
   to a client of the other node; time until the client has read them all);
3. broadcast to ``--clients`` idle clients split over 2 nodes vs all on one
   (time from the request until the last client has read the line);
4. with ``--soak S``: 2 nodes, ``--churn`` clients connecting and
   disconnecting, pushes at 500/s to clients connected the whole time:
   node RSS at start/end and pushes lost (counted).

    python benchmarks/cluster.py                       # ~1 minute
    python benchmarks/cluster.py --duration 2 --clients 2000   # a quick check
    python benchmarks/cluster.py --soak 300 --churn 2000       # the 5-minute soak

Everything binds 127.0.0.1. Needs redis-server on PATH.
"""

import argparse
import http.client
import json
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


class Cluster:
    def __init__(self):
        self.procs = []
        self.redis_port = free_port()
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.procs.append(subprocess.Popen(
            [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL))
        wait_port(self.redis_port)
        self.nodes = [self.start_node(f"bench{i}") for i in (1, 2)]
        for node in self.nodes:
            wait_port(node["http"])
            while not self.get(node, "/stats")["broker_up"]:
                time.sleep(0.05)

    def start_node(self, node_id):
        http, tcp = free_port(), free_port()
        env = dict(os.environ, PYTHONPATH=ROOT, PYLITEFLUX_INFO="false",
                   PYLITEFLUX_CLUSTER_PREFIX="bench")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyliteflux", "--app", "benchmarks.cluster:server",
             "--push-backend", f"redis://127.0.0.1:{self.redis_port}/0", "--node-id", node_id,
             "--http", f"tcp:{http}:interface=127.0.0.1:backlog=4096",
             "--tcp", f"tcp:{tcp}:interface=127.0.0.1:backlog=4096", "--quiet"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return {"http": http, "tcp": tcp, "pid": proc.pid, "conn": None}

    def get(self, node, path, body=None):
        if node["conn"] is None:
            node["conn"] = http.client.HTTPConnection("127.0.0.1", node["http"], timeout=30)
        conn = node["conn"]
        if body is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())

    def rss_kb(self, node):
        with open(f"/proc/{node['pid']}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait()


class Client:
    """A blocking line client (its own reader thread when asked)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")
        self.sock.sendall(b'{"command": "whoami"}\n')
        self.client_id = json.loads(self.file.readline())["client_id"]

    def lines(self):
        for line in self.file:
            yield json.loads(line)

    def close(self):
        self.sock.close()


def latency(cluster, sender, holder, rate, duration):
    client = Client(holder["tcp"])
    got = []
    total = int(rate * duration)

    def read():
        for line in client.lines():
            got.append(time.perf_counter() - line["data"])
            if len(got) >= total:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        cluster.get(sender, "/push", {"message": time.perf_counter(),
                                      "client_id": client.client_id})
    reader.join(10)
    client.close()
    achieved = total / (time.perf_counter() - start)
    ms = sorted(x * 1000 for x in got)
    p = (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]) if ms else (lambda q: float("nan"))
    return {"sent": total, "received": len(got), "rate": round(achieved),
            "p50_ms": round(p(0.5), 3), "p99_ms": round(p(0.99), 3)}


def burst(cluster, n):
    a, b = cluster.nodes
    client = Client(b["tcp"])
    start = time.perf_counter()
    reply = cluster.get(a, f"/burst?client_id={client.client_id}&n={n}")
    count = 0
    for _ in client.lines():
        count += 1
        if count == n:
            break
    elapsed = time.perf_counter() - start
    client.close()
    return {"pushes": n, "publish_per_s": round(n / reply["seconds"]),
            "delivered_per_s": round(n / elapsed)}


def broadcast(cluster, count, split):
    socks = []
    sel = selectors.DefaultSelector()
    for i in range(count):
        node = cluster.nodes[i % 2] if split else cluster.nodes[1]
        s = socket.create_connection(("127.0.0.1", node["tcp"]))
        s.sendall(b'{"command": "whoami"}\n')
        socks.append(s)
    for s in socks:  # the whoami replies, so only the push is left to read
        s.makefile("rb").readline()
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    time.sleep(0.5)
    waiting = set(socks)
    start = time.perf_counter()
    cluster.get(cluster.nodes[0], "/push", {"message": "all"})
    while waiting and time.perf_counter() - start < 30:
        for key, _ in sel.select(1):
            if key.fileobj.recv(65536):
                waiting.discard(key.fileobj)
                sel.unregister(key.fileobj)
    elapsed = time.perf_counter() - start
    for s in socks:
        s.close()
    return {"clients": count, "missed": len(waiting), "ms": round(elapsed * 1000, 1)}


def soak(cluster, seconds, churn, rate=500):
    a, b = cluster.nodes
    steady = [Client(b["tcp"]) for _ in range(20)]
    counts = [0] * len(steady)
    for i, c in enumerate(steady):
        threading.Thread(target=lambda i=i, c=c: [counts.__setitem__(i, counts[i] + 1)
                                                  for _ in c.lines()], daemon=True).start()
    stop = time.time() + seconds
    rss0 = [cluster.rss_kb(n) for n in cluster.nodes]

    def churner():
        while time.time() < stop:
            # from 127.0.0.2: a churning id never equals a steady client's
            # "127.0.0.1:port" (same-host ids can collide across nodes)
            batch = [socket.create_connection(("127.0.0.1", cluster.nodes[i % 2]["tcp"]),
                                              source_address=("127.0.0.2", 0))
                     for i in range(churn)]
            for s in batch:
                s.close()

    threading.Thread(target=churner, daemon=True).start()
    sent, start = 0, time.perf_counter()
    while time.time() < stop:
        c = steady[sent % len(steady)]
        cluster.get(a, "/push", {"message": sent, "client_id": c.client_id})
        sent += 1
        pause = start + sent / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    time.sleep(2)
    rss1 = [cluster.rss_kb(n) for n in cluster.nodes]
    return {"seconds": seconds, "pushes": sent, "lost": sent - sum(counts),
            "rss_kb_start": rss0, "rss_kb_end": rss1}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--burst", type=int, default=50000)
    parser.add_argument("--clients", type=int, default=10000)
    parser.add_argument("--soak", type=float, default=0)
    parser.add_argument("--churn", type=int, default=2000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # nodes inherit it
    cluster = Cluster()
    try:
        a, b = cluster.nodes
        results = {
            "latency same node": latency(cluster, b, b, args.rate, args.duration),
            "latency cross node": latency(cluster, a, b, args.rate, args.duration),
            "cross-node publish": burst(cluster, args.burst),
            "broadcast, 1 node": broadcast(cluster, args.clients, split=False),
            "broadcast, 2 nodes": broadcast(cluster, args.clients, split=True),
        }
        if args.soak:
            results["soak"] = soak(cluster, args.soak, args.churn)
        for name, figures in results.items():
            print(f"{name:22} {json.dumps(figures)}")
    finally:
        cluster.stop()


# -- the app the nodes serve: examples/cluster.py plus GET /burst ------------------------

if __name__ != "__main__":
    from examples.cluster import server

    @server.route("/burst")
    def burst_route(request):
        n = int(request.query_params.get("n", "1000"))
        client_id = request.query_params["client_id"]
        start = time.perf_counter()
        for i in range(n):
            server.push_message(i, client_id)
        return {"seconds": time.perf_counter() - start}

if __name__ == "__main__":
    main()
