"""TCP round-trip client: N connections, one request in flight on each.

Usage: tcp_client.py PORT CONNECTIONS WARMUP_S DURATION_S

Each connection sends one JSON command line, waits for the reply line and
sends the next (no pipelining beyond one per connection). Raw non-blocking
sockets on epoll keep the client cheap; run it pinned to its own core.
Prints one JSON object: round trips per second over the measured window,
and the p50/p99 round-trip latency in ms.
"""

import json
import os
import select
import socket
import sys
import time

REQUEST = b'{"command": "echo", "data": {"n": 1, "msg": "hello"}, "id": 1}\n'


def server_cpu(pid):
    """User + system CPU seconds of process ``pid`` (0.0 when not given)."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    port, nconn = int(sys.argv[1]), int(sys.argv[2])
    warmup, duration = float(sys.argv[3]), float(sys.argv[4])
    server_pid = int(sys.argv[5]) if len(sys.argv) > 5 else None  # for its CPU time
    cpu_from = 0.0
    ep = select.epoll()
    socks = {}
    sent_at = {}
    for _ in range(nconn):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    now = time.perf_counter()
    for fd, s in socks.items():
        s.send(REQUEST)
        sent_at[fd] = now
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + duration
    count = 0
    lat = []
    measuring = False
    perf = time.perf_counter
    while True:
        now = perf()
        if now >= end:
            break
        if not measuring and now >= measure_from:
            measuring = True
            count = 0
            lat = []
            t_measure = now
            cpu_from = server_cpu(server_pid)
        for fd, _ in ep.poll(0.5):
            s = socks[fd]
            data = s.recv(65536)
            if not data:
                raise SystemExit(f"server closed connection {fd}")
            n = data.count(b"\n")
            if n:
                t = perf()
                count += n
                if measuring:
                    lat.append(t - sent_at[fd])
                s.send(REQUEST)
                sent_at[fd] = t
    elapsed = perf() - t_measure
    cpu_used = server_cpu(server_pid) - cpu_from
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 3) if lat else None

    print(json.dumps({"rt_per_s": count / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                      "round_trips": count, "seconds": elapsed,
                      "server_cpu_s": cpu_used if server_pid else None}))
    for s in socks.values():
        s.close()


if __name__ == "__main__":
    main()
