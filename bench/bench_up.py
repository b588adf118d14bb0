#!/usr/bin/env python3
"""Performance figures of `faasemu up`, each against a baseline measured in the same run.

    python bench/bench_up.py [--json FILE] [--rounds N] [--quick]

A benchmark, not a test: it never fails on a figure, it prints them (see bench/README.md for what
each one means and the targets). Phases, in order:

1. start-up: spawn -> first 200 from the function, faasemu and the bare uvicorn app, interleaved;
2. throughput and latency: `wrk --latency` at 1 and 32 connections against the bare app and
   against `faasemu up` (concurrency 2 and 1), interleaved rounds, medians;
3. memory: VmRSS of the supervisor, its workers and the bare app, idle after the load;
4. hot reload: edits of a copy of bench/project/handler.py under steady load; ms from the write
   to the first response with the new body, and every failed request.

Everything listens on 127.0.0.1. Every process started here is stopped in a `finally`.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from typing import Any, Callable

BENCH = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(BENCH, "project")
MANIFEST_C2 = os.path.join(PROJECT, "faasemu.yaml")
MANIFEST_C1 = os.path.join(PROJECT, "faasemu-c1.yaml")
BASELINE_APP = os.path.join(BENCH, "baseline_app.py")
HOST = "127.0.0.1"
ROUTE = "/ok"
FUNCTION = "ok"
HANDLER_SOURCE = 'def handler(event, context):\n    return {{"statusCode": 200, "body": "{body}"}}\n'
WRK = shutil.which("wrk") or "/usr/bin/wrk"


# -- small helpers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def faasemu_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "faasemu")
    if os.path.exists(script):
        return [script]
    found = shutil.which("faasemu")
    return [found] if found else [sys.executable, "-m", "faasemu"]


def get(port: int, path: str = ROUTE, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, starttime) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[1]), int(rest[19])


def children_of(pid: int) -> list[tuple[int, int]]:
    """(pid, starttime) of the direct children of `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = proc_stat(int(entry))
        if stat is not None and stat[0] == pid:
            found.append((int(entry), stat[1]))
    return sorted(found)


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


# -- servers -------------------------------------------------------------------------------------


class Server:
    """A server subprocess on a free loopback port, its output in files under `log_dir`."""

    def __init__(self, name: str, argv: Callable[[int], list[str]], log_dir: str, cwd: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = env
        self.argv = argv
        self.log_dir = log_dir
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.spawned = 0.0
        self.stop_ms: float | None = None
        self.left_behind: list[int] = []
        self.stdout_path = ""
        self.stderr_path = ""
        self._seen_children: dict[int, int] = {}

    def start(self, tag: str = "") -> None:
        self.port = free_port()
        base = os.path.join(self.log_dir, re.sub(r"[^\w.-]+", "_", f"{self.name}{tag}"))
        self.stdout_path, self.stderr_path = base + ".stdout", base + ".stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.spawned = time.perf_counter()
            self.proc = subprocess.Popen(self.argv(self.port), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=self.cwd, start_new_session=True,
                                         env=None if self.env is None else {**os.environ, **self.env})
        self.stop_ms = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float = 20.0, interval: float = 0.005) -> float:
        """Poll the function every `interval` until it answers 200; ms since the spawn."""
        assert self.proc is not None
        deadline = self.spawned + timeout
        statuses: Counter[str] = Counter()
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.proc.returncode} before answering:\n"
                                   + self.tail(self.stderr_path) + self.tail(self.stdout_path))
            try:
                status, _ = get(self.port, timeout=max(0.1, deadline - time.perf_counter()))
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                time.sleep(interval)
                continue
            except (OSError, http.client.HTTPException) as exc:
                statuses[type(exc).__name__] += 1
                time.sleep(interval)
                continue
            if status == 200:
                self.not_ready_answers = dict(statuses)
                return (time.perf_counter() - self.spawned) * 1000
            statuses[str(status)] += 1
            time.sleep(interval)
        raise RuntimeError(f"{self.name} did not answer 200 within {timeout:.0f} s (answers: {dict(statuses)})\n"
                           + self.tail(self.stderr_path))

    def children(self) -> list[tuple[int, int]]:
        kids = children_of(self.pid) if self.proc is not None and self.proc.poll() is None else []
        for pid, start in kids:
            self._seen_children[pid] = start
        return kids

    def stop(self) -> None:
        if self.proc is None:
            return
        self.children()
        if self.proc.poll() is None:
            started = time.perf_counter()
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
            self.stop_ms = (time.perf_counter() - started) * 1000
        # Workers run in sessions of their own: kill any the supervisor left behind (only those we saw).
        deadline = time.perf_counter() + 1.0
        while True:
            alive = [pid for pid, start in self._seen_children.items() if (st := proc_stat(pid)) and st[1] == start]
            if not alive or time.perf_counter() > deadline:
                break
            time.sleep(0.02)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.left_behind = alive
        self._seen_children = {}
        self.proc = None

    @staticmethod
    def tail(path: str, lines: int = 15) -> str:
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def baseline_server(log_dir: str) -> Server:
    return Server("baseline", lambda port: [sys.executable, BASELINE_APP, "--port", str(port)], log_dir)


def faasemu_server(name: str, manifest: str, log_dir: str, env: dict[str, str] | None = None) -> Server:
    # Default console output (per-invocation lines on), reload on: `faasemu up` as a user runs it.
    return Server(name, lambda port: [*faasemu_command(), "up", "-f", manifest, "--port", str(port)], log_dir,
                  env=env)


# -- wrk -----------------------------------------------------------------------------------------

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def run_wrk(port: int, threads: int, connections: int, seconds: float) -> dict[str, Any]:
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s",
           f"http://{HOST}:{port}{ROUTE}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    out = proc.stdout
    result: dict[str, Any] = {"cmd": " ".join(cmd[1:]), "rps": None, "requests": 0, "p50_ms": None,
                              "p99_ms": None, "non2xx": 0, "socket_errors": 0, "raw": out + proc.stderr}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = int(m.group(1))
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        result[f"p{pct}_ms"] = float(value) * UNIT_MS[unit]
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["socket_errors"] = sum(int(g) for g in m.groups())
        result["socket_detail"] = m.group(0)
    if proc.returncode != 0 or result["rps"] is None:
        result["error"] = f"wrk exited {proc.returncode}: {proc.stderr.strip() or out.strip()}"
    return result


def console_summary(path: str) -> dict[str, Any]:
    """What `faasemu up` printed: per-invocation lines by status, and anything that looks wrong."""
    statuses: Counter[str] = Counter()
    slowest = 0.0
    suspicious: list[str] = []
    invocation = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}\s+\S+\s+\S+ \S+\s+(\S+)\s+([\d.]+) ms")
    lines = 0
    size = 0
    try:
        size = os.path.getsize(path)
        with open(path, errors="replace") as f:
            for line in f:
                lines += 1
                if m := invocation.match(line):
                    statuses[m.group(1)] += 1
                    slowest = max(slowest, float(m.group(2)))
                elif re.search(r"error|warning|traceback|exception|killed|timed out", line, re.I):
                    if len(suspicious) < 20:
                        suspicious.append(line.rstrip())
    except OSError:
        pass
    return {"bytes": size, "lines": lines, "invocation_lines": sum(statuses.values()), "statuses": dict(statuses),
            "slowest_logged_ms": slowest, "suspicious": suspicious}


# -- phases --------------------------------------------------------------------------------------


def phase_startup(log_dir: str, starts: int) -> dict[str, Any]:
    out: dict[str, Any] = {"faasemu_ms": [], "baseline_ms": [], "faasemu_stop_ms": [], "faasemu_rss_fresh_mib": [],
                           "worker_rss_fresh_mib": [], "not_ready_answers": [], "left_behind": 0}
    for i in range(starts):
        for kind in ("baseline", "faasemu"):
            server = baseline_server(log_dir) if kind == "baseline" else faasemu_server("faasemu-start", MANIFEST_C2, log_dir)
            try:
                server.start(f"-{i}")
                ms = server.wait_ready()
                out[f"{kind}_ms"].append(ms)
                if kind == "faasemu":
                    out["not_ready_answers"].append(getattr(server, "not_ready_answers", {}))
                    time.sleep(0.2)
                    out["faasemu_rss_fresh_mib"].append(rss_mib(server.pid))
                    kids = server.children()
                    out["worker_rss_fresh_mib"].extend(rss_mib(pid) for pid, _ in kids)
            finally:
                server.stop()
                if kind == "faasemu":
                    out["faasemu_stop_ms"].append(server.stop_ms)
                    out["left_behind"] += len(server.left_behind)
    return out


def project_copy() -> str:
    """A private copy of the bench project: one `faasemu up` owns a project's .faasemu/ at a time."""
    project = os.path.join(tempfile.mkdtemp(prefix="faasemu-bench-"), "project")
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns(".faasemu", "__pycache__"))
    return project


def phase_throughput(log_dir: str, rounds: int, short: float, long: float) -> dict[str, Any]:
    servers = [
        baseline_server(log_dir),
        faasemu_server("faasemu c=2", MANIFEST_C2, log_dir),
        # Runs alongside c=2, so in a copy of the project (two `up` never share one .faasemu/).
        faasemu_server("faasemu c=1", os.path.join(project_copy(), os.path.basename(MANIFEST_C1)), log_dir),
        # the same as c=2 without pipelining (docs/architecture.md#pipelining): what it gains, in this run
        faasemu_server("faasemu c=2 nopipe", os.path.join(project_copy(), os.path.basename(MANIFEST_C2)), log_dir,
                       env={"FAASEMU_PIPELINE": "0"}),
    ]
    configs = [(1, 1, short), (2, 32, long)]
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {s.name: {c: [] for _, c, _ in configs} for s in servers}
    memory: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    consoles: dict[str, Any] = {}
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
            status, body = get(server.port)
            checks[server.name] = {"status": status, "body": body.decode(errors="replace")}
            print(f"  check {server.name:<12} GET {ROUTE} -> {status} {body!r}", flush=True)
            if status != 200 or body != b"ok":
                raise RuntimeError(f"{server.name} answers {status} {body!r}, not 200 'ok': not measuring that")
        for server in servers:  # warm-up: 1 s at 32 connections (starts every worker of a faasemu function)
            warm = run_wrk(server.port, 2, 32, 1)
            print(f"  warm-up {server.name:<12} {fmt(warm['rps'], 0)} req/s  non-2xx {warm['non2xx']}  "
                  f"socket errors {warm['socket_errors']}", flush=True)
        for r in range(rounds):
            for threads, conns, seconds in configs:
                for server in servers:
                    result = run_wrk(server.port, threads, conns, seconds)
                    runs[server.name][conns].append(result)
                    alive = server.proc is not None and server.proc.poll() is None
                    print(f"  round {r + 1} {server.name:<12} c={conns:<3} {fmt(result['rps'], 0):>8} req/s  "
                          f"p50 {fmt(result['p50_ms'], 3)} ms  p99 {fmt(result['p99_ms'], 3)} ms  "
                          f"non-2xx {result['non2xx']}  socket errors {result['socket_errors']}"
                          + ("" if alive else "  SERVER EXITED") + (f"  {result['error']}" if "error" in result else ""),
                          flush=True)
        time.sleep(1.0)  # idle
        for server in servers:
            entry: dict[str, Any] = {"process_mib": rss_mib(server.pid)}
            if server.name.startswith("faasemu"):
                entry["workers_mib"] = [rss_mib(pid) for pid, _ in server.children()]
            memory[server.name] = entry
    finally:
        for server in servers:
            server.stop()
            if server.name.startswith("faasemu") and server.stdout_path:
                consoles[server.name] = console_summary(server.stdout_path)
                consoles[server.name]["stderr"] = Server.tail(server.stderr_path, 20)
                consoles[server.name]["stop_ms"] = server.stop_ms
                consoles[server.name]["left_behind"] = server.left_behind

    summary: dict[str, Any] = {}
    for name, by_conns in runs.items():
        summary[name] = {}
        for conns, results in by_conns.items():
            summary[name][conns] = {
                "rps": median([x["rps"] for x in results]),
                "p50_ms": median([x["p50_ms"] for x in results]),
                "p99_ms": median([x["p99_ms"] for x in results]),
                "requests": sum(x["requests"] for x in results),
                "non2xx": sum(x["non2xx"] for x in results),
                "socket_errors": sum(x["socket_errors"] for x in results),
                "rounds": [x["rps"] for x in results],
            }
    for name in runs:
        for conns in runs[name]:
            ratios = [
                f["rps"] / b["rps"]
                for f, b in zip(runs[name][conns], runs["baseline"][conns])
                if f["rps"] and b["rps"]
            ]
            summary[name][conns]["ratio"] = median(ratios)
            summary[name][conns]["ratios"] = ratios
    for name, console in consoles.items():
        served = sum(x["requests"] for c in runs[name].values() for x in c)
        console["requests_measured"] = served
    return {"summary": summary, "runs": runs, "memory": memory, "checks": checks, "consoles": consoles}


class Load(threading.Thread):
    """Sequential keep-alive GETs on one connection; every non-200 or connection error is a failure."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.halt = threading.Event()
        self.ok = 0
        self.failed = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []

    def fail(self, what: str) -> None:
        self.failed += 1
        if len(self.failures) < 10:
            self.failures.append(what)

    def run(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        while not self.halt.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", ROUTE)
                response = conn.getresponse()
                body = response.read()
                self.latencies.append((time.perf_counter() - started) * 1000)
                if response.status == 200:
                    self.ok += 1
                else:
                    self.fail(f"{response.status} {body[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                self.fail(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                time.sleep(0.002)
        conn.close()


def phase_reload(log_dir: str, edits: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="faasemu-bench-reload-")
    project = os.path.join(tmp, "project")
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns(".faasemu", "__pycache__"))
    handler = os.path.join(project, "handler.py")
    server = faasemu_server("faasemu-reload", os.path.join(project, "faasemu.yaml"), log_dir)
    out: dict[str, Any] = {"ms": [], "timeouts": 0, "poller_failed": 0, "poller_failures": [], "settle_ms": []}
    load: Load | None = None
    try:
        server.start()
        server.wait_ready()
        load = Load(server.port)
        load.start()
        time.sleep(0.5)
        poll = http.client.HTTPConnection(HOST, server.port, timeout=10)
        for i in range(1, edits + 1):
            body = f"v{i}"
            source = HANDLER_SOURCE.format(body=body)
            started = time.perf_counter()
            with open(handler, "w") as f:
                f.write(source)
            seen = None
            while time.perf_counter() - started < 10.0:
                try:
                    poll.request("GET", ROUTE)
                    response = poll.getresponse()
                    data = response.read()
                    if response.status != 200:
                        out["poller_failed"] += 1
                        if len(out["poller_failures"]) < 10:
                            out["poller_failures"].append(f"{response.status} {data[:200]!r}")
                    elif data == body.encode():
                        seen = (time.perf_counter() - started) * 1000
                        break
                except (OSError, http.client.HTTPException) as exc:
                    out["poller_failed"] += 1
                    if len(out["poller_failures"]) < 10:
                        out["poller_failures"].append(f"{type(exc).__name__}: {exc}")
                    poll.close()
                    poll = http.client.HTTPConnection(HOST, server.port, timeout=10)
                time.sleep(0.002)
            if seen is None:
                out["timeouts"] += 1
            else:
                out["ms"].append(seen)
            # Wait for the reload to complete: no worker starting, nothing queued, then a quiet
            # period longer than the watcher's debounce so the next edit is a separate change.
            settle = time.perf_counter()
            while time.perf_counter() - settle < 5.0:
                status, data = get(server.port, "/_faasemu/functions")
                fn = next((f for f in json.loads(data)["functions"] if f["name"] == FUNCTION), None) if status == 200 else None
                if fn and fn["workers"]["starting"] == 0 and fn["queued"] == 0:
                    break
                time.sleep(0.01)
            out["settle_ms"].append((time.perf_counter() - started) * 1000)
            print(f"  edit {i:>2}: new body after {fmt(seen, 1)} ms  (load so far: {load.ok} ok, {load.failed} failed)",
                  flush=True)
            time.sleep(0.4)
        poll.close()
        time.sleep(0.3)
    finally:
        if load is not None:
            load.halt.set()
            load.join(15)
        server.stop()
        console = console_summary(server.stdout_path) if server.stdout_path else {}
        ready = []
        try:
            with open(server.stdout_path, errors="replace") as f:
                ready = [float(m.group(1)) for m in re.finditer(r"ready \((\d+) ms\)", f.read())]
        except OSError:
            pass
        out["console"] = console
        out["console_ready_ms"] = ready
        out["stderr"] = Server.tail(server.stderr_path, 20)
        shutil.rmtree(tmp, ignore_errors=True)
    if load is not None:
        out["load_ok"] = load.ok
        out["load_failed"] = load.failed
        out["load_failures"] = load.failures
        out["load_max_ms"] = max(load.latencies) if load.latencies else None
        out["load_p50_ms"] = median(load.latencies)
    out["median_ms"] = median(out["ms"])
    out["p90_ms"] = percentile(out["ms"], 0.9)
    out["max_ms"] = max(out["ms"]) if out["ms"] else None
    out["failed_total"] = out.get("load_failed", 0) + out["poller_failed"]
    return out


# -- report --------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    meta = results["meta"]
    add("")
    add(f"faasemu up benchmark · {meta['date']} · {meta['cpus']} CPUs · Python {meta['python']} · "
        f"{meta['rounds']} interleaved rounds")
    tp = results.get("throughput")
    add("")
    add("1. Throughput and latency (wrk --latency on loopback; medians over rounds; x = faasemu/baseline per round, median)")
    if tp and "summary" in tp:
        add(f"  {'server':<14}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'x base':>8}{'non-2xx':>9}{'sock err':>9}")
        for conns in (1, 32):
            for name, by_conns in tp["summary"].items():
                s = by_conns[conns]
                add(f"  {name:<14}{conns:>6}{fmt(s['rps'], 0):>10}{fmt(s['p50_ms'], 3):>9}{fmt(s['p99_ms'], 3):>9}"
                    f"{fmt(s['ratio'], 2, 'x'):>8}{s['non2xx']:>9}{s['socket_errors']:>9}")
        r = tp["summary"]["faasemu c=2"][32]["ratio"]
        add(f"  faasemu (concurrency 2) / baseline at 32 connections: {fmt(r, 2, 'x')} (target >= 0.60x)")
        off = tp["summary"].get("faasemu c=2 nopipe", {}).get(32, {}).get("ratio")
        if r and off:
            add(f"  without pipelining (FAASEMU_PIPELINE=0): {fmt(off, 2, 'x')}; pipelining gains {fmt(r / off, 2, 'x')}")
        for name, console in tp.get("consoles", {}).items():
            add(f"  {name}: console file {console['bytes'] / 1e6:.1f} MB, {console['invocation_lines']:,} invocation "
                f"lines for {console['requests_measured']:,} measured requests (+ checks and warm-up); statuses "
                f"{console['statuses']}; slowest logged {console['slowest_logged_ms']:.1f} ms; shutdown "
                f"{fmt(console['stop_ms'], 0)} ms")
    else:
        add(f"  not measured: {results.get('errors', {}).get('throughput', '?')}")

    rl = results.get("reload")
    add("")
    add("2. Hot reload (ms from the write of handler.py to the first response with the new body, under load)")
    if rl and rl.get("ms") is not None and "median_ms" in rl:
        add(f"  edits {len(rl['ms']) + rl['timeouts']}, never seen within 10 s: {rl['timeouts']}")
        add(f"  median {fmt(rl['median_ms'])} ms · p90 {fmt(rl['p90_ms'])} ms · max {fmt(rl['max_ms'])} ms "
            f"(target: median <= 150 ms)")
        add(f"  failed requests: {rl['failed_total']} (background load {rl.get('load_failed', '?')} of "
            f"{rl.get('load_ok', 0) + rl.get('load_failed', 0):,}, poller {rl['poller_failed']}) (target: 0)")
        add(f"  background load latency: p50 {fmt(rl.get('load_p50_ms'), 2)} ms, max {fmt(rl.get('load_max_ms'), 1)} ms; "
            f"faasemu's own 'ready' notices: median {fmt(median(rl['console_ready_ms']), 0)} ms over "
            f"{len(rl['console_ready_ms'])}")
    else:
        add(f"  not measured: {results.get('errors', {}).get('reload', '?')}")

    st = results.get("startup")
    add("")
    add("3. Start-up (ms from spawn to the first 200 from the function, polling every 5 ms)")
    if st and st["faasemu_ms"]:
        add(f"  faasemu up: median {fmt(median(st['faasemu_ms']), 0)} ms over {len(st['faasemu_ms'])} "
            f"(min {fmt(min(st['faasemu_ms']), 0)}, max {fmt(max(st['faasemu_ms']), 0)}) (target <= 1000 ms)")
        if st["baseline_ms"]:
            add(f"  baseline:   median {fmt(median(st['baseline_ms']), 0)} ms over {len(st['baseline_ms'])} "
                f"(min {fmt(min(st['baseline_ms']), 0)}, max {fmt(max(st['baseline_ms']), 0)})")
        add(f"  faasemu shutdown (SIGTERM to exit): median {fmt(median(st['faasemu_stop_ms']), 0)} ms; "
            f"workers left behind: {st['left_behind']}")
    else:
        add(f"  not measured: {results.get('errors', {}).get('startup', '?')}")

    add("")
    add("4. Memory (VmRSS)")
    mem = (tp or {}).get("memory") or {}
    if mem:
        for name, entry in mem.items():
            workers = entry.get("workers_mib")
            extra = ""
            if workers is not None:
                extra = f" · workers ({len(workers)}): " + ", ".join(fmt(w, 1) for w in workers) + " MiB"
            label = "supervisor" if workers is not None else "process"
            add(f"  {name:<12} idle after the load: {label} {fmt(entry['process_mib'])} MiB{extra}")
    if st and st.get("faasemu_rss_fresh_mib"):
        add(f"  faasemu after its first request: supervisor {fmt(median(st['faasemu_rss_fresh_mib']))} MiB, "
            f"worker {fmt(median(st['worker_rss_fresh_mib']))} MiB")
    if not mem:
        add("  not measured (the throughput phase did not complete)")

    if results.get("errors"):
        add("")
        add("Errors:")
        for phase, text in results["errors"].items():
            add(f"  {phase}: {text}")
    anomalies = anomalies_of(results)
    if anomalies:
        add("")
        add("Looked wrong:")
        lines.extend(f"  - {a}" for a in anomalies)
    return "\n".join(lines)


def anomalies_of(results: dict[str, Any]) -> list[str]:
    found = []
    tp = results.get("throughput") or {}
    for name, by_conns in (tp.get("summary") or {}).items():
        for conns, s in by_conns.items():
            if s["non2xx"] or s["socket_errors"]:
                found.append(f"{name} c={conns}: wrk saw {s['non2xx']} non-2xx responses and {s['socket_errors']} socket errors")
    for name, console in (tp.get("consoles") or {}).items():
        bad = {k: v for k, v in console["statuses"].items() if k != "200"}
        if bad:
            found.append(f"{name}: console logged non-200 statuses {bad}")
        if console["suspicious"]:
            found.append(f"{name}: console lines: " + " | ".join(console["suspicious"][:5]))
        if console["stderr"].strip():
            found.append(f"{name}: stderr: {console['stderr'].strip()[-600:]}")
        if console["left_behind"]:
            found.append(f"{name}: worker processes left running after shutdown: {console['left_behind']}")
    rl = results.get("reload") or {}
    if rl.get("load_failures") or rl.get("poller_failures"):
        found.append(f"reload: failures: {(rl.get('load_failures') or []) + (rl.get('poller_failures') or [])}")
    if rl.get("timeouts"):
        found.append(f"reload: {rl['timeouts']} edits never served within 10 s")
    if (rl.get("console") or {}).get("suspicious"):
        found.append("reload: console lines: " + " | ".join(rl["console"]["suspicious"][:5]))
    if (rl.get("stderr") or "").strip():
        found.append(f"reload: stderr: {rl['stderr'].strip()[-600:]}")
    st = results.get("startup") or {}
    if st.get("left_behind"):
        found.append(f"start-up: {st['left_behind']} worker processes left running after shutdown")
    odd = [a for a in st.get("not_ready_answers", []) if a]
    if odd:
        found.append(f"start-up: answers other than 200/refused while starting: {odd}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="FILE", help="also write every figure (and raw wrk output) as JSON")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds (default 3)")
    parser.add_argument("--edits", type=int, default=12, help="handler edits in the reload phase (default 12)")
    parser.add_argument("--starts", type=int, default=5, help="start-ups of each server (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 round of short wrk runs, 4 edits, 2 starts: a smoke run")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' console files and print where")
    args = parser.parse_args()
    short, long = 5.0, 8.0
    if args.quick:
        args.rounds, args.edits, args.starts, short, long = 1, 4, 2, 2.0, 2.0
    if not os.path.exists(WRK):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2

    log_dir = tempfile.mkdtemp(prefix="faasemu-bench-logs-")
    began = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "rounds": args.rounds,
            "wrk": [f"-t1 -c1 -d{short:g}s --latency", f"-t2 -c32 -d{long:g}s --latency"],
            "faasemu_stdout": "a file (per-invocation lines on, the cost of writing them included)",
        },
        "errors": {},
    }
    phases = [
        ("startup", lambda: phase_startup(log_dir, args.starts)),
        ("throughput", lambda: phase_throughput(log_dir, args.rounds, short, long)),
        ("reload", lambda: phase_reload(log_dir, args.edits)),
    ]
    try:
        for name, run in phases:
            print(f"[{time.perf_counter() - began:5.1f} s] {name} ...", flush=True)
            try:
                results[name] = run()
            except Exception as exc:  # a benchmark reports what it could not measure and goes on
                results["errors"][name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
    except KeyboardInterrupt:
        results["errors"]["interrupted"] = "Ctrl+C"
    finally:
        results["meta"]["seconds"] = round(time.perf_counter() - began, 1)
        if args.keep_logs:
            print(f"server console files kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    print(report(results))
    print(f"\n(total {results['meta']['seconds']} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
