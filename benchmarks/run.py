#!/usr/bin/env python3
"""pyliteflux benchmark suite: one command, one table, ratios from one run.

Run from the repository root (Linux, 2+ cores, ``wrk`` and ``taskset`` on
PATH; Debian: ``apt-get install wrk util-linux``)::

    python benchmarks/run.py                      # everything, ~12 minutes
    python benchmarks/run.py --rounds 4 --duration 2   # quicker, noisier
    python benchmarks/run.py --only http          # cases whose group/name matches
    python benchmarks/run.py --markdown out.md    # also write the table as Markdown

Every server is a separate process pinned to core 0 (``taskset -c 0``) and
bound to 127.0.0.1; every load generator runs pinned to core 1
(``taskset -c 1``). Each case starts its own server, waits until its port
accepts, runs a warmup and then a time-bounded measurement, and kills the
server (its whole process group) before the next case starts. Cases whose
dependencies are missing (Klein, aiohttp, wrk) are skipped with a note.

Groups and their reference (ratio 1.00, higher is better everywhere):

- HTTP GET /hello, ``wrk -t1 -c50 --latency``: bare ``twisted.web``
  Resource (reference), a raw Twisted Protocol with a canned response
  (ceiling), Klein, aiohttp, pyliteflux, pyliteflux + 2 middlewares using g.
- HTTP GET /hello with SPEC §16's metrics off (reference) and on
  (``metrics_endpoint`` set): on must keep at least 0.90.
- HTTP POST /echo with a 1 KiB JSON body (wrk + Lua): twisted.web vs pyliteflux.
- HTTP GET /r99/{id} with 100 parameterised routes registered (the last
  one matches): twisted.web Resource tree vs pyliteflux.
- TCP round trips (one request in flight per connection) at 1 and 100
  connections: bare ``LineReceiver`` JSON echo vs pyliteflux
  (``benchmarks/tcp_client.py``).
- Background jobs (``bg_jobs.py``, one pyliteflux server): GET /hello idle
  (reference), the same while 100 jobs keep the job pool busy (the p99
  against the idle p99 is in the notes), and GET /job queueing one job per
  request (jobs accepted per second while serving).
- Push fan-out to 1,000 and 10,000 idle keep-alive connections: time from the
  HTTP request that triggers one broadcast until every client has the line
  (median of ``--rounds`` broadcasts; ratio = reference time / time), and
  server RSS per idle connection (``benchmarks/fanout_client.py``).

Besides req/s (or round trips/s) and wrk's p50/p99, every HTTP/TCP case
reports the server's CPU time per request (utime+stime from /proc over the
measured window) and the reference's CPU/request divided by it ("CPU
ratio"): on a shared or virtual machine whose speed drifts, that is the
steadier figure. HTTP/TCP groups start all their servers, warm each up, and
measure them interleaved for ``--rounds`` rounds (each round in the order
opposite to the one before). The throughput shown is the median round; the
ratio is *paired*: each round's figure divided by the reference's in the
same round, median over the rounds. On a virtual machine whose speed drifts
by 20-30 % over a minute, pairing is what makes a ratio repeatable. Every
round's figure and ratio are in the notes.

All servers run with their access log off (see ``servers/_common.py``).
Reference servers live in ``benchmarks/servers/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = os.path.join(HERE, "servers")
PY = sys.executable


@dataclass
class Case:
    group: str
    name: str
    script: str
    mode: str
    kind: str  # wrk | tcp | fanout
    reference: bool = False
    needs: Optional[str] = None  # importable module the server needs
    url: str = "/hello"
    lua: Optional[str] = None
    conns: int = 50
    result: Dict[str, Any] = field(default_factory=dict)
    note: str = ""


def cases() -> List[Case]:
    hello = "HTTP GET /hello (JSON), wrk -c50"
    metrics = "HTTP GET /hello, metrics off vs on (SPEC §16: >= 0.90), wrk -c50"
    post = "HTTP POST /echo, 1 KiB JSON, wrk -c50"
    params = "HTTP GET /r99/{id}, 100 param routes, wrk -c50"
    out = [
        Case(hello, "twisted.web Resource", "twisted_web.py", "hello", "wrk", reference=True),
        Case(hello, "raw Twisted Protocol (ceiling)", "raw_protocol.py", "hello", "wrk"),
        Case(hello, "Klein", "klein_app.py", "hello", "wrk", needs="klein"),
        Case(hello, "aiohttp", "aiohttp_app.py", "hello", "wrk", needs="aiohttp"),
        Case(hello, "pyliteflux", "pyliteflux_app.py", "hello", "wrk"),
        Case(hello, "pyliteflux + 2 middlewares + g", "pyliteflux_app.py", "hello_mw", "wrk"),
        Case(hello, "pyliteflux llhttp", "pyliteflux_app.py", "hello-llhttp", "wrk",
             needs="httptools"),
        Case(hello, "pyliteflux llhttp + 2 middlewares + g", "pyliteflux_app.py",
             "hello_mw-llhttp", "wrk", needs="httptools"),
        Case(metrics, "pyliteflux, metrics off", "pyliteflux_app.py", "hello", "wrk",
             reference=True),
        Case(metrics, "pyliteflux, metrics on", "pyliteflux_app.py", "hello_metrics", "wrk"),
        Case(post, "twisted.web Resource", "twisted_web.py", "post", "wrk", reference=True,
             url="/echo", lua="post"),
        Case(post, "aiohttp", "aiohttp_app.py", "post", "wrk", needs="aiohttp", url="/echo",
             lua="post"),
        Case(post, "pyliteflux", "pyliteflux_app.py", "post", "wrk", url="/echo", lua="post"),
        Case(post, "pyliteflux llhttp", "pyliteflux_app.py", "post-llhttp", "wrk",
             needs="httptools", url="/echo", lua="post"),
        Case(params, "twisted.web Resource tree", "twisted_web.py", "params", "wrk",
             reference=True, url="/r99/12345"),
        Case(params, "aiohttp", "aiohttp_app.py", "params", "wrk", needs="aiohttp",
             url="/r99/12345"),
        Case(params, "pyliteflux", "pyliteflux_app.py", "params", "wrk", url="/r99/12345"),
        Case(params, "pyliteflux llhttp", "pyliteflux_app.py", "params-llhttp", "wrk",
             needs="httptools", url="/r99/12345"),
    ]
    for n in (1, 100):
        g = f"TCP JSON echo round trips, {n} conn"
        out.append(Case(g, "bare LineReceiver", "line_echo.py", "echo", "tcp", reference=True,
                        conns=n))
        out.append(Case(g, "pyliteflux", "pyliteflux_app.py", "echo", "tcp", conns=n))
    bg = "Background jobs (pyliteflux), wrk -c50"
    out += [
        Case(bg, "GET /hello, idle", "bg_jobs.py", "idle", "bgjobs", reference=True),
        Case(bg, "GET /hello, 100 busy jobs", "bg_jobs.py", "busy", "bgjobs"),
        Case(bg, "GET /job (one job queued each)", "bg_jobs.py", "job", "bgjobs", url="/job"),
    ]
    for n in (1000, 10000):
        g = f"Push fan-out to {n:,} idle connections"
        out.append(Case(g, "bare LineReceiver loop", "line_echo.py", "push", "fanout",
                        reference=True, conns=n))
        out.append(Case(g, "pyliteflux push_message", "pyliteflux_app.py", "push", "fanout",
                        conns=n))
    return out


# -- processes --------------------------------------------------------------------------


def pin(core: int) -> List[str]:
    return ["taskset", "-c", str(core)] if PIN else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} does not accept connections")


class ServerProcess:
    """One benchmark server, in its own process group so it can be killed whole."""

    def __init__(self, case: Case, log_dir: str) -> None:
        self.http_port = free_port()
        self.tcp_port = free_port()
        cmd = pin(0) + [PY, "-u", os.path.join(SERVERS, case.script), case.mode,
                        "--port", str(self.http_port), "--tcp-port", str(self.tcp_port)]
        self.log_path = os.path.join(log_dir, f"{case.script}-{case.mode}.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log,
                                     cwd=SERVERS, start_new_session=True)
        deadline = time.monotonic() + 20
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(b"ready") or not line:
                break
        if not line.startswith(b"ready"):
            self.stop()
            raise RuntimeError(f"server did not start; see {self.log_path}")
        port = self.tcp_port if case.kind == "tcp" else self.http_port
        wait_port(port)
        if case.kind == "fanout":
            wait_port(self.tcp_port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.proc.stdout.close()
        self.log.close()


# -- loads --------------------------------------------------------------------------------

def _post_body(size: int = 1024) -> str:
    """A JSON object of exactly ``size`` bytes (compact separators)."""
    doc: Dict[str, Any] = {"items": [{"id": i, "name": f"item-{i:04d}", "ok": True}
                                     for i in range(20)], "pad": ""}
    doc["pad"] = "x" * (size - len(json.dumps(doc, separators=(",", ":"))))
    return json.dumps(doc, separators=(",", ":"))


POST_BODY = _post_body()


def lua_script(kind: str, tmp: str) -> str:
    path = os.path.join(tmp, f"{kind}.lua")
    body = POST_BODY
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f"wrk.body = {json.dumps(body)}\n")
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def check_http(case: Case, port: int) -> None:
    """One request before the load: the server must answer 200 with JSON."""
    data = POST_BODY.encode() if case.lua else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{case.url}", data=data,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = resp.read()
        if resp.status != 200 or "json" not in resp.headers.get("Content-Type", ""):
            raise RuntimeError(f"bad answer {resp.status} {resp.headers} {body[:80]!r}")
        json.loads(body)


def run_wrk(case: Case, port: int, args: argparse.Namespace, tmp: str,
            pid: int) -> Dict[str, Any]:
    check_http(case, port)
    url = f"http://127.0.0.1:{port}{case.url}"
    base = pin(1) + ["wrk", "-t1", f"-c{case.conns}"]
    if case.lua:
        base += ["-s", lua_script(case.lua, tmp)]
    subprocess.run(base + [f"-d{max(1, round(args.warmup))}s", url], check=True, capture_output=True,
                   timeout=args.warmup + 30)
    before = cpu_seconds(pid)  # the server's CPU over the measured run only
    out = subprocess.run(base + [f"-d{max(1, round(args.duration))}s", "--latency", url], check=True,
                         capture_output=True, text=True, timeout=args.duration + 30).stdout
    cpu_used = cpu_seconds(pid) - before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    count = int(re.search(r"(\d+) requests in", out).group(1))
    return {"value": rps, "p50": p50, "p99": p99, "errors": errors, "count": count,
            "cpu_us": cpu_used * 1e6 / max(1, count)}


def run_tcp(case: Case, port: int, args: argparse.Namespace, pid: int) -> Dict[str, Any]:
    cmd = pin(1) + [PY, os.path.join(HERE, "tcp_client.py"), str(port), str(case.conns),
                    str(args.warmup), str(args.duration), str(pid)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         timeout=args.warmup + args.duration + 60).stdout
    r = json.loads(out)
    return {"value": r["rt_per_s"], "p50": r["p50_ms"], "p99": r["p99_ms"], "errors": 0,
            "count": r["round_trips"],
            "cpu_us": r["server_cpu_s"] * 1e6 / max(1, r["round_trips"])}


def run_fanout(case: Case, server: ServerProcess, args: argparse.Namespace) -> Dict[str, Any]:
    cmd = pin(1) + [PY, os.path.join(HERE, "fanout_client.py"), str(server.tcp_port),
                    str(server.http_port), str(server.pid), str(case.conns), str(args.rounds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=180).stdout
    r = json.loads(out)
    errors = sum(1 for x in r["reached"] if x != case.conns)
    return {"value": r["fanout_ms_median"], "all_ms": r["fanout_ms_all"],
            "rss_per_conn": r["rss_per_conn_kib"], "reached": r["reached"], "errors": errors}


def run_bg_jobs(group: List[Case], args: argparse.Namespace) -> None:
    """``bg_jobs.py``'s three loads, one after the other on one server (the
    ratio of interest is p99 with busy jobs / idle p99, in the notes)."""
    import bg_jobs

    print(f"... {group[0].group}", file=sys.stderr, flush=True)
    try:
        r = bg_jobs.measure(duration=max(5, round(args.duration)), jobs=100)
    except Exception as exc:  # one broken case must not stop the suite
        for case in group:
            case.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        return
    for case in group:
        rps, p50, p99 = r[{"idle": "idle", "busy": "busy", "job": "accepted"}[case.mode]]
        case.result = {"value": rps, "p50": p50, "p99": p99}
        if case.mode == "busy":
            case.note = f"p99 {p99 / r['idle'][2]:.2f}x idle p99 (target ≤ 2)"
        elif case.mode == "job":
            case.note = (f"{rps:,.0f} jobs/s accepted while serving; {r['done']:,} completed "
                         f"in the window; {r['rejected']} rejected")


def _skip_reason(case: Case) -> str:
    if case.needs:
        probe = subprocess.run([PY, "-c", f"import {case.needs}"], capture_output=True)
        if probe.returncode:
            return f"skipped: {case.needs} not installed (pip install {case.needs})"
    if case.kind in ("wrk", "bgjobs") and not shutil.which("wrk"):
        return "skipped: wrk not installed (apt-get install wrk)"
    return ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(case: Case, server: ServerProcess, args: argparse.Namespace,
             tmp: str) -> Dict[str, Any]:
    """One measurement; HTTP/TCP results carry the server's CPU time per
    request over the measured window (less sensitive to a noisy, shared
    machine than req/s)."""
    if case.kind == "fanout":
        return run_fanout(case, server, args)
    if case.kind == "wrk":
        return run_wrk(case, server.http_port, args, tmp, server.pid)
    return run_tcp(case, server.tcp_port, args, server.pid)


def _combine(samples: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Median over the rounds (by throughput), with the spread kept."""
    ordered = sorted(samples, key=lambda r: r["value"])
    mid = dict(ordered[(len(ordered) - 1) // 2])  # lower median: a real sample
    mid["rounds"] = [r["value"] for r in samples]
    mid["cpu_rounds"] = [r.get("cpu_us") for r in samples]
    cpu = sorted(r["cpu_us"] for r in samples if "cpu_us" in r)
    if cpu:
        mid["cpu_us"] = cpu[(len(cpu) - 1) // 2]
    mid["errors"] = sum(r.get("errors", 0) for r in samples)
    return mid


def run_group(group: List[Case], args: argparse.Namespace, tmp: str) -> None:
    """Run one group's cases, interleaved, so slow drifts of a shared machine
    hit every server alike.

    HTTP and TCP groups start all their servers (each idle on core 0 while
    another is loaded), warm each up, then measure them in turn for
    ``args.rounds`` rounds and keep the median. Fan-out cases run one
    server at a time (10,000 connections each); each does ``args.rounds``
    broadcasts.
    """
    runnable = []
    for case in group:
        case.note = _skip_reason(case)
        if not case.note:
            runnable.append(case)
    if not runnable:
        return
    if runnable[0].kind == "bgjobs":
        run_bg_jobs(runnable, args)
        return
    if runnable[0].kind == "fanout":
        for case in runnable:
            print(f"... {case.group} :: {case.name}", file=sys.stderr, flush=True)
            server = None
            try:
                server = ServerProcess(case, tmp)
                case.result = _measure(case, server, args, tmp)
            except Exception as exc:  # one broken case must not stop the suite
                case.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            finally:
                if server is not None:
                    server.stop()
        return
    servers: Dict[int, ServerProcess] = {}
    samples: Dict[int, List[Dict[str, Any]]] = {id(c): [] for c in runnable}
    try:
        for case in runnable:
            try:
                servers[id(case)] = ServerProcess(case, tmp)
            except Exception as exc:
                case.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        live = [c for c in runnable if id(c) in servers]
        warm = argparse.Namespace(**{**vars(args), "duration": args.warmup})
        for case in live:  # warmup (its figures are dropped)
            try:
                _measure(case, servers[id(case)], warm, tmp)
            except Exception as exc:
                case.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        live = [c for c in live if not c.note]
        for rnd in range(args.rounds):
            # forward, then backward (A B C C B A ...): a drift of the
            # machine's speed during a round hits each case alike on average
            for case in (live if rnd % 2 == 0 else live[::-1]):
                print(f"... {case.group} :: {case.name} (round {rnd + 1}/{args.rounds})",
                      file=sys.stderr, flush=True)
                if case.note:
                    continue
                try:
                    samples[id(case)].append(_measure(case, servers[id(case)], args, tmp))
                except Exception as exc:
                    case.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        for case in live:
            if samples[id(case)] and not case.note:
                case.result = _combine(samples[id(case)])
            if servers[id(case)].proc.poll() is not None:
                case.note = f"server died during the run; see {servers[id(case)].log_path}"
    finally:
        for server in servers.values():
            server.stop()


# -- report ---------------------------------------------------------------------------------


def ratios(all_cases: List[Case]) -> None:
    refs = {c.group: c for c in all_cases if c.reference}
    for c in all_cases:
        ref = refs.get(c.group)
        if not c.result or not ref or not ref.result:
            continue
        if c.kind == "fanout":  # a time: lower is better
            c.result["ratio"] = ref.result["value"] / c.result["value"]
            continue
        if c.url != ref.url:  # another request: no ratio to speak of
            continue
        mine, theirs = c.result.get("rounds", []), ref.result.get("rounds", [])
        if mine and len(mine) == len(theirs):
            # paired: each round's figure against the reference's in the same
            # round, median over rounds (slow drifts of the machine cancel out)
            c.result["round_ratios"] = [m / t for m, t in zip(mine, theirs, strict=True)]
            c.result["ratio"] = _median(c.result["round_ratios"])
            cpu_pairs = [t / m for m, t in zip(c.result.get("cpu_rounds", []),
                                                ref.result.get("cpu_rounds", []), strict=False) if m and t]
            if cpu_pairs:
                c.result["cpu_ratio"] = _median(cpu_pairs)
        else:
            c.result["ratio"] = c.result["value"] / ref.result["value"]
            if c.result.get("cpu_us") and ref.result.get("cpu_us"):
                c.result["cpu_ratio"] = ref.result["cpu_us"] / c.result["cpu_us"]


def _median(values: List[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def table(all_cases: List[Case]) -> str:
    rows = ["| case | server | throughput / time | p50 ms | p99 ms | ratio "
            "| server CPU µs/req | CPU ratio | notes |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for c in all_cases:
        r = c.result
        note = c.note
        if not r:
            rows.append(f"| {c.group} | {c.name} | – | – | – | – | – | – | {note} |")
            continue
        if c.kind == "fanout":
            value = f"{r['value']:.1f} ms"
            p50 = p99 = "–"
            extra = (f"RSS {r['rss_per_conn']:.2f} KiB/conn; runs "
                     + ", ".join(f"{t:.0f}" for t in r["all_ms"]) + " ms")
        else:
            unit = "rt/s" if c.kind == "tcp" else "req/s"
            value = f"{r['value']:,.0f} {unit}"
            p50, p99 = f"{r['p50']:.2f}", f"{r['p99']:.2f}"
            spread = r.get("rounds", [])
            extra = ("rounds " + "/".join(f"{v / 1000:.1f}k" for v in spread)) if len(spread) > 1 else ""
            if r.get("round_ratios") and not c.reference:
                extra += "; ratio by round " + "/".join(f"{v:.2f}" for v in r["round_ratios"])
        if r.get("errors"):
            extra += f" {r['errors']} errors!"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "–"
        if c.reference:
            ratio += " (ref)"
        cpu = f"{r['cpu_us']:.1f}" if r.get("cpu_us") else "–"
        cpu_ratio = f"{r['cpu_ratio']:.2f}" if "cpu_ratio" in r else "–"
        rows.append(f"| {c.group} | {c.name} | {value} | {p50} | {p99} | {ratio} | {cpu} | "
                    f"{cpu_ratio} | "
                    f"{' '.join(x for x in (extra.strip(), note) if x)} |")
    return "\n".join(rows)


def machine() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import twisted

    return (f"nproc {os.cpu_count()}, CPU {model}, Python {sys.version.split()[0]}, "
            f"Twisted {twisted.__version__}, pinned={'yes' if PIN else 'no'}")


PIN = True


def main() -> int:
    global PIN
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=3,
                   help="measured seconds per case and round (HTTP, TCP)")
    p.add_argument("--warmup", type=float, default=2, help="warmup seconds per server")
    p.add_argument("--rounds", type=int, default=8,
                   help="interleaved rounds per HTTP/TCP case (median kept); "
                        "broadcasts per fan-out case")
    p.add_argument("--only", default="", help="run cases whose group or name contains this")
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--json", help="also write raw results to this file")
    args = p.parse_args()
    args.duration = int(args.duration) if float(args.duration).is_integer() else args.duration
    args.warmup = int(args.warmup) if float(args.warmup).is_integer() else args.warmup

    if not sys.platform.startswith("linux"):
        print("benchmarks need Linux (/proc, epoll, taskset)", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        PIN = False
        print("note: fewer than 2 cores or no taskset: not pinning; figures are not "
              "comparable with pinned runs", file=sys.stderr)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by every child

    selected = [c for c in cases()
                if args.only.lower() in (c.group + " " + c.name + " " + c.kind).lower()]
    # keep each group's reference when filtering, so ratios still exist
    groups = {c.group for c in selected}
    selected = [c for c in cases() if c.group in groups and
                (c.reference or c in selected)]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pyliteflux-bench-") as tmp:
        groups_in_order: List[str] = []
        for c in selected:
            if c.group not in groups_in_order:
                groups_in_order.append(c.group)
        for name in groups_in_order:
            group = [c for c in selected if c.group == name]
            run_group(group, args, tmp)
            for c in group:
                if c.note:
                    print(f"    {c.name}: {c.note}", file=sys.stderr)
    ratios(selected)
    text = table(selected)
    header = (f"{machine()}\nwarmup {args.warmup}s per server, then {args.rounds} interleaved "
              f"rounds of {args.duration}s per case (median round shown; ratio = median of "
              f"per-round ratios), "
              f"total {time.time() - started:.0f}s\n")
    print(header)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + "\n" + text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"group": c.group, "name": c.name, "result": c.result, "note": c.note}
                       for c in selected], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
