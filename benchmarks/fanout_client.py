"""Push fan-out client: N idle keep-alive connections, then broadcasts.

Usage: fanout_client.py TCP_PORT HTTP_PORT SERVER_PID N ROUNDS

Reads the server's VmRSS, opens N connections, waits for them to settle and
reads VmRSS again (RSS per idle connection = difference / N). Then, ROUNDS
times: GET /broadcast on the HTTP port and time from sending that request
until every one of the N connections has received a full line. Prints JSON.
"""

import json
import resource
import select
import socket
import statistics
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def http_get(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    return s


def read_all(s):
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            break
        chunks.append(data)
    s.close()
    return b"".join(chunks)


def main():
    tcp_port, http_port, pid, n, rounds = (int(a) for a in sys.argv[1:6])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    time.sleep(0.3)
    before = rss_kib(pid)
    socks = []
    t0 = time.perf_counter()
    for _ in range(n):
        socks.append(socket.create_connection(("127.0.0.1", tcp_port), timeout=10))
    connect_s = time.perf_counter() - t0
    time.sleep(1.5)  # let the server accept and set up every connection
    after = rss_kib(pid)
    ep = select.epoll()
    fds = {}
    for s in socks:
        s.setblocking(False)
        fds[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    times = []
    reached = []
    for _ in range(rounds):
        got = set()
        bufs = {}
        t0 = time.perf_counter()
        req = http_get(http_port, b"/broadcast")
        while len(got) < n:
            events = ep.poll(10)
            if not events:
                raise SystemExit(f"timed out: {len(got)}/{n} received the push")
            for fd, _ in events:
                data = fds[fd].recv(65536)
                if not data:
                    raise SystemExit("server closed a connection")
                if b"\n" in data or b"\n" in bufs.get(fd, b"") + data:
                    got.add(fd)
                else:
                    bufs[fd] = bufs.get(fd, b"") + data
        times.append((time.perf_counter() - t0) * 1000)
        body = read_all(req).split(b"\r\n\r\n", 1)[1]
        reached.append(json.loads(body)["reached"])
        time.sleep(0.3)
    print(json.dumps({
        "n": n,
        "fanout_ms_median": statistics.median(times),
        "fanout_ms_min": min(times),
        "fanout_ms_all": [round(t, 1) for t in times],
        "reached": reached,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_per_conn_kib": (after - before) / n,
        "connect_s": connect_s,
    }))
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
