#!/usr/bin/env python3
"""Server memory while streaming a large body to a slow reader.

Runs a pyliteflux server in this process (127.0.0.1, a free port) with one
route that streams ``--mb`` megabytes as fresh 64 KiB chunks, and a client
in a *separate* process that reads the response at ``--rate`` MB/s. While
the stream runs it samples this process's RSS (``/proc/self/status``) and
the reactor's lag (how late a 10 ms timer fires). Backpressure works when
the RSS growth stays small however big the body is; the target is < 20 MB.

    python benchmarks/stream_memory.py                     # 200 MB at 40 MB/s
    python benchmarks/stream_memory.py --mb 200 --rate 20
    python benchmarks/stream_memory.py --source async      # async generator
    python benchmarks/stream_memory.py --source file       # file reader on the reactor
    python benchmarks/stream_memory.py --source file-thread --rate 0   # in_thread(), no limit
    python benchmarks/stream_memory.py --no-backpressure   # control: pausing disabled

Exit status is 0 when the growth is under ``--limit-mb`` (20) and every
byte arrived, 1 otherwise. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from typing import Any, Dict, List

CHUNK = 65536


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# -- the client (runs in its own process) ----------------------------------------------


def client(port: int, rate_mb: float, rcvbuf: int) -> None:
    """GET /big and read it at ``rate_mb`` MB/s (0 = as fast as possible)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    received = 0
    start = time.monotonic()
    while True:
        data = sock.recv(CHUNK)
        if not data:
            break
        received += len(data)
        if rate_mb:
            due = start + received / (rate_mb * 1e6)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    sock.close()
    print(received, time.monotonic() - start, flush=True)


# -- the server ------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    from twisted.internet import reactor, task
    from twisted.internet.defer import Deferred

    from pyliteflux import Server, StreamResponse
    from pyliteflux.core.routing import Router
    from pyliteflux.streaming import StreamProducer, in_thread

    total = args.mb * 1024 * 1024
    count = total // CHUNK
    path = None
    if args.source.startswith("file"):
        fd, path = tempfile.mkstemp(prefix="pyliteflux-stream-bench-")
        with os.fdopen(fd, "wb") as out:
            block = os.urandom(1024 * 1024)
            for _ in range(args.mb):
                out.write(block)

    if args.no_backpressure:
        StreamProducer.pauseProducing = lambda self: None  # type: ignore[method-assign]

    def body() -> Any:
        if args.source == "generator":
            return (b"x" * CHUNK for _ in range(count))
        if args.source == "async":
            async def agen() -> Any:
                for _ in range(count):
                    yield b"y" * CHUNK
            return agen()

        def file_reader() -> Any:
            with open(path, "rb") as f:  # type: ignore[arg-type]
                while chunk := f.read(CHUNK):
                    yield chunk

        return in_thread(file_reader()) if args.source == "file-thread" else file_reader()

    server = Server(router=Router(), http_port=0, info=False)

    @server.route("/big")
    def big(request: Any) -> StreamResponse:
        return StreamResponse(body())

    samples: Dict[str, List[float]] = {"rss": [], "lag": []}
    result: Dict[str, Any] = {}

    def sample_rss() -> None:
        samples["rss"].append(rss_mb())

    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        samples["lag"].append(now - last[0] - 0.01)
        last[0] = now

    async def main() -> None:
        listening = await server.listen("http")
        port = listening.http_port
        baseline = rss_mb()
        rss_loop = task.LoopingCall(sample_rss)
        rss_loop.start(0.05)
        lag_loop = task.LoopingCall(tick)
        last[0] = time.monotonic()
        lag_loop.start(0.01, now=False)
        done: Deferred = Deferred()
        out: List[bytes] = []

        from twisted.internet import protocol

        class Proc(protocol.ProcessProtocol):
            def outReceived(self, data: bytes) -> None:
                out.append(data)

            def errReceived(self, data: bytes) -> None:
                sys.stderr.write(data.decode("utf-8", "replace"))

            def processEnded(self, reason: Any) -> None:
                done.callback(None)

        cmd = [sys.executable, os.path.abspath(__file__), "--client", str(port),
               "--rate", str(args.rate), "--rcvbuf", str(args.rcvbuf)]
        started = time.monotonic()
        proc = reactor.spawnProcess(Proc(), sys.executable, cmd, env=dict(os.environ))
        killer = reactor.callLater(args.timeout, proc.signalProcess, "KILL")
        await done
        if killer.active():
            killer.cancel()
        elapsed = time.monotonic() - started
        rss_loop.stop()
        lag_loop.stop()
        await server._stop_service()
        fields = b"".join(out).split()
        result.update(
            baseline=baseline,
            peak=max(samples["rss"] or [baseline]),
            received=int(fields[0]) if fields else 0,
            elapsed=elapsed,
            lag=max(samples["lag"] or [0.0]),
        )

    def run() -> None:
        d = Deferred.fromCoroutine(main())
        d.addErrback(lambda f: (f.printTraceback(), result.setdefault("error", f)))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    if path is not None:
        os.unlink(path)
    if "error" in result or "peak" not in result:
        return 1
    growth = result["peak"] - result["baseline"]
    complete = result["received"] >= total
    print(f"source={args.source} body={args.mb} MB rate={args.rate or 'unlimited'} MB/s "
          f"backpressure={'off' if args.no_backpressure else 'on'}")
    print(f"  client received {result['received'] / 2**20:.1f} MiB in {result['elapsed']:.1f} s "
          f"({result['received'] / 2**20 / max(result['elapsed'], 1e-9):.1f} MiB/s)"
          f"{'' if complete else '  INCOMPLETE'}")
    print(f"  server RSS baseline {result['baseline']:.1f} MB, peak {result['peak']:.1f} MB, "
          f"growth {growth:.1f} MB (limit {args.limit_mb} MB)")
    print(f"  worst reactor lag {result['lag'] * 1000:.1f} ms")
    ok = growth < args.limit_mb and complete
    print("  PASS" if ok else "  FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="body size in MiB (200)")
    parser.add_argument("--rate", type=float, default=40.0,
                        help="client read rate in MB/s, 0 = unlimited (40)")
    parser.add_argument("--source", default="generator",
                        choices=("generator", "async", "file", "file-thread"))
    parser.add_argument("--rcvbuf", type=int, default=0,
                        help="client SO_RCVBUF in bytes (0 = system default)")
    parser.add_argument("--limit-mb", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="kill the client after this many seconds (120)")
    parser.add_argument("--no-backpressure", action="store_true",
                        help="control run: ignore pauseProducing")
    parser.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.rate, args.rcvbuf)
        return 0
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
