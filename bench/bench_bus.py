#!/usr/bin/env python3
"""Performance figures of the event bus of `faasemu up`, each against a floor measured in the same run.

    python bench/bench_bus.py [--json FILE] [--rounds N] [--quick] [--keep-logs]

A benchmark, not a test: it never fails on a figure, it prints them (see bench/README.md, "The
event bus", for what each one means and what each floor includes). Phases, in order:

1. ingress: events/s answered 202 by `POST /_faasemu/events` (wrk, plain JSON, 32 connections),
   for an event type no function subscribes to and for one with one subscriber; floor: a Python
   loop inserting the same rows into a SQLite WAL database (synchronous=NORMAL), one commit per
   event, in the project folder;
2. deliveries: N events posted in batches to one subscribed function (concurrency 1 and 2), from
   the first post to the moment the event log shows every delivery acknowledged; floor: the same
   handler called in a loop in this process plus one acknowledgement commit per event.

Everything listens on 127.0.0.1. Every process started here is stopped in a `finally`.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from typing import Any

from faasemu.delivery.eventlog import SCHEMA as EVENTLOG_SCHEMA

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_up import faasemu_command, free_port, median, proc_stat  # noqa: E402  (shared helpers)

BENCH = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(BENCH, "bus_project")
MANIFEST = os.path.join(PROJECT, "faasemu.yaml")
HANDLER_FILE = os.path.join(PROJECT, "handler.py")
STATE_SCHEMA = os.path.join(PROJECT, "schema.sql")
DOT_FAASEMU = os.path.join(PROJECT, ".faasemu")  # where `up` keeps events.db and state.db (git-ignored)
FLOOR_DIR = os.path.join(DOT_FAASEMU, "bench-floor")  # the floors' databases: same folder, same disk
HOST = "127.0.0.1"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
INGRESS = "/_faasemu/events"
TICK_BODY = '{"type": "bench.tick", "data": {"n": 1}}'  # matches no function
SUB_BODY = '{"type": "bench.sub", "data": {"n": 1}}'  # one subscriber: ingest-sub
DELIVER = {1: ("deliver-c1", "bench.c1"), 2: ("deliver-c2", "bench.c2")}  # concurrency -> (function, type)

WRK_SCRIPT = r"""
-- POST one small plain-JSON event per request; count the answers by status.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("STATUS %d %d\n", k, v)) end
end
"""


# -- small helpers -------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def ratio(value: float | None, floor: float | None) -> float | None:
    return value / floor if value and floor else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0
    rest = data[data.rindex(b")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> dict[int, int]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := proc_stat(int(entry))) is not None and stat[0] == pid:
            found[int(entry)] = stat[1]
    return found


def connect_wal(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def remove_db(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


def plain_event(event_type: str) -> dict[str, Any]:
    """What the ingress stores for `{"type": ..., "data": {"n": 1}}` (normalized CloudEvent)."""
    return {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "faasemu", "type": event_type,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "datacontenttype": "application/json",
            "data": {"n": 1}}


# -- the server ----------------------------------------------------------------------------------


class Up:
    """`faasemu up` on bench/bus_project with a fresh event log and state, output to files."""

    def __init__(self, log_dir: str, tag: str, extra: tuple[str, ...] = ()) -> None:
        self.log_dir = log_dir
        self.tag = tag
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.seen: dict[int, int] = {}
        self.left_behind: list[int] = []
        self.stdout_path = os.path.join(log_dir, f"up-{tag}.stdout")
        self.stderr_path = os.path.join(log_dir, f"up-{tag}.stderr")

    @property
    def events_db(self) -> str:
        return os.path.join(DOT_FAASEMU, "events.db")

    def start(self) -> None:
        remove_db(os.path.join(DOT_FAASEMU, "events.db"))
        remove_db(os.path.join(DOT_FAASEMU, "state.db"))
        self.port = free_port()
        # Default console output (per-invocation lines on), reload on: `faasemu up` as a user runs it.
        argv = [*faasemu_command(), "up", "-f", MANIFEST, "--port", str(self.port), *self.extra]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.perf_counter() + 20
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"faasemu up exited with {self.proc.returncode}:\n{tail(self.stderr_path)}"
                                   f"{tail(self.stdout_path)}")
            try:
                status, _ = self.request("GET", "/_faasemu/health", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("faasemu up did not answer /_faasemu/health within 20 s\n" + tail(self.stderr_path))

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
                timeout: float = 30) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"content-type": content_type} if body else {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of the supervisor and of its live worker processes (summed)."""
        assert self.proc is not None
        self.note_children()
        return cpu_seconds(self.proc.pid), sum(cpu_seconds(pid) for pid in children_of(self.proc.pid))

    def note_children(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.seen.update(children_of(self.proc.pid))

    def stop(self) -> None:
        if self.proc is None:
            return
        self.note_children()
        if self.proc.poll() is None:
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
        # Workers run in sessions of their own: kill any the supervisor left behind (only those we saw).
        deadline = time.perf_counter() + 1.0
        while True:
            alive = [pid for pid, start in self.seen.items() if (st := proc_stat(pid)) and st[1] == start]
            if not alive or time.perf_counter() > deadline:
                break
            time.sleep(0.02)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.left_behind = alive
        self.proc = None


def tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def console_summary(path: str) -> dict[str, Any]:
    """What `faasemu up` printed: per-invocation lines by function and status, their logged ms, oddities."""
    line_re = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}\s+(\S+)\s+(?:event \S+|\S+ \S+)\s+(\S+)\s+([\d.]+) ms")
    statuses: Counter[str] = Counter()
    call_ms: dict[str, list[float]] = {}
    suspicious: list[str] = []
    lines = size = 0
    try:
        size = os.path.getsize(path)
        with open(path, errors="replace") as f:
            for line in f:
                lines += 1
                if m := line_re.match(line):
                    statuses[f"{m.group(1)} {m.group(2)}"] += 1
                    if m.group(1) != "-":
                        call_ms.setdefault(m.group(1), []).append(float(m.group(3)))
                elif re.search(r"error|warning|traceback|exception|killed|timed out", line, re.I):
                    if len(suspicious) < 20:
                        suspicious.append(line.rstrip())
    except OSError:
        pass
    return {"bytes": size, "lines": lines, "statuses": dict(statuses), "suspicious": suspicious,
            "call_ms_mean": {fn: statistics.fmean(v) for fn, v in call_ms.items()}}


def log_counts(events_db: str) -> dict[str, Any]:
    """Events and deliveries by function and status, read from the event log (WAL: readers never block)."""
    db = sqlite3.connect(events_db, timeout=10)
    try:
        events = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        deliveries = {f"{fn} {status}": n for fn, status, n in db.execute(
            "SELECT function, status, COUNT(*) FROM deliveries GROUP BY function, status")}
        attempts = {fn: n for fn, n in db.execute("SELECT function, SUM(attempts) FROM deliveries GROUP BY function")}
    finally:
        db.close()
    return {"events": events, "deliveries": deliveries, "attempts": attempts}


def done_count(db: sqlite3.Connection, function: str) -> int:
    return db.execute("SELECT COUNT(*) FROM deliveries WHERE function = ? AND status = 'done'", (function,)).fetchone()[0]


def open_count(db: sqlite3.Connection) -> int:
    # `status != 'done'` is what the log's partial index covers: cheap to poll.
    return db.execute("SELECT COUNT(*) FROM deliveries WHERE status != 'done'").fetchone()[0]


# -- wrk -----------------------------------------------------------------------------------------


def run_wrk(port: int, script: str, body: str, connections: int, seconds: float) -> dict[str, Any]:
    cmd = [WRK, "-t2", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "-s", script,
           f"http://{HOST}:{port}{INGRESS}"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                          env={**os.environ, "BENCH_BODY": body})
    wall = time.perf_counter() - started
    out = proc.stdout
    statuses = {int(code): int(n) for code, n in re.findall(r"^STATUS (\d+) (\d+)$", out, re.M)}
    result: dict[str, Any] = {"cmd": " ".join(cmd[1:]), "statuses": statuses, "accepted": statuses.get(202, 0),
                              "other": sum(n for code, n in statuses.items() if code != 202),
                              "socket_errors": 0, "seconds": None, "raw": out + proc.stderr}
    if m := re.search(r"\d+ requests in ([\d.]+)(ms|s|m)", out):
        result["seconds"] = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["socket_errors"] = sum(int(g) for g in m.groups())
        result["socket_detail"] = m.group(0)
    if m := re.search(r"Latency\s+([\d.]+\w+)", out):
        result["latency_avg"] = m.group(1)
    result["rate"] = result["accepted"] / result["seconds"] if result["seconds"] else None
    if proc.returncode != 0 or result["seconds"] is None:
        result["error"] = f"wrk exited {proc.returncode} after {wall:.1f} s: {proc.stderr.strip() or out.strip()}"
    return result


# -- floors --------------------------------------------------------------------------------------


def floor_ingress(seconds: float, with_delivery: bool) -> dict[str, Any]:
    """A plain loop: build the row the ingress stores (uuid id, JSON body) and INSERT it (plus its one
    delivery row when `with_delivery`) into a database with the event log's schema, WAL,
    synchronous=NORMAL, one BEGIN/COMMIT per event. No HTTP, no parsing, no event loop."""
    os.makedirs(FLOOR_DIR, exist_ok=True)
    path = os.path.join(FLOOR_DIR, "ingress.db")
    remove_db(path)
    db = connect_wal(path)
    db.executescript(EVENTLOG_SCHEMA)
    cursor = db.cursor()
    count = 0
    event_type = "bench.sub" if with_delivery else "bench.tick"
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            event = plain_event(event_type)
            now = time.time()
            cursor.execute("BEGIN")
            cursor.execute(
                "INSERT INTO events (id, source, type, body, origin, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (event["id"], event["source"], event["type"], json.dumps(event), "ingress", now))
            if with_delivery:
                cursor.execute(
                    "INSERT INTO deliveries (event_seq, function, copy, op, status, attempts, budget_from, next_at,"
                    " inject, tags, updated_at) VALUES (?, ?, 0, 'event', 'pending', 0, 0, ?, NULL, '', ?)",
                    (cursor.lastrowid, "ingest-sub", now, now))
            cursor.execute("COMMIT")
            count += 1
    elapsed = time.perf_counter() - started
    db.close()
    remove_db(path)
    return {"events": count, "seconds": elapsed, "rate": count / elapsed}


def load_handler(state_path: str) -> Any:
    """A fresh copy of bench/bus_project/handler.py (its own connection), with $FAASEMU_STATE set."""
    os.environ["FAASEMU_STATE"] = state_path
    spec = importlib.util.spec_from_file_location(f"bus_handler_{uuid.uuid4().hex}", HANDLER_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FloorContext:
    function_name = "floor"
    aws_request_id = "floor"


def floor_delivery(n: int) -> dict[str, Any]:
    """The same handler function called in a loop in this process: per event, its INSERT + commit into a
    state database (WAL, synchronous=NORMAL, same folder), then an acknowledgement: the UPDATE the bus
    makes of the event's delivery row (status done, attempts 1, ...) in a database with the event log's
    schema, committed on its own (WAL, synchronous=NORMAL). The N events and their delivery rows are
    inserted before the clock starts; the handler's connection is opened before it too."""
    os.makedirs(FLOOR_DIR, exist_ok=True)
    state_path = os.path.join(FLOOR_DIR, "state.db")
    log_path = os.path.join(FLOOR_DIR, "events.db")
    remove_db(state_path)
    remove_db(log_path)
    with open(STATE_SCHEMA, encoding="utf-8") as f:
        setup = sqlite3.connect(state_path)
        setup.executescript(f.read())
        setup.commit()
        setup.close()
    log = connect_wal(log_path)
    log.executescript(EVENTLOG_SCHEMA)
    events = []
    now = time.time()
    log.execute("BEGIN")
    for _ in range(n + 1):
        event = plain_event("bench.c1")
        seq = log.execute("INSERT INTO events (id, source, type, body, origin, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                          (event["id"], "faasemu", event["type"], json.dumps(event), "ingress", now)).lastrowid
        log.execute("INSERT INTO deliveries (event_seq, function, copy, op, next_at, updated_at)"
                    " VALUES (?, 'floor', 0, 'event', ?, ?)", (seq, now, now))
        # The EventBridge shape an aws-lambda function receives (the handler reads `id`).
        events.append((seq, {"version": "0", "id": event["id"], "detail-type": event["type"], "source": "faasemu",
                             "account": "000000000000", "time": event["time"], "region": "us-east-1",
                             "resources": [], "detail": event["data"]}))
    log.execute("COMMIT")
    module = load_handler(state_path)
    context = FloorContext()
    module.handler(events[0][1], context)  # opens the handler's connection (faasemu's workers are warm too)
    update = ("UPDATE deliveries SET status = ?, attempts = ?, budget_from = ?, next_at = ?, inject = ?,"
              " last_error = ?, updated_at = ? WHERE event_seq = ? AND function = ? AND copy = ?")
    started = time.perf_counter()
    for seq, event in events[1:]:
        module.handler(event, context)
        log.execute("BEGIN")
        log.execute(update, ("done", 1, 0, time.time(), None, None, time.time(), seq, "floor", 0))
        log.execute("COMMIT")
    elapsed = time.perf_counter() - started
    seen = module._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0] - 1
    module._db.close()
    log.close()
    remove_db(state_path)
    remove_db(log_path)
    return {"deliveries": n, "seconds": elapsed, "rate": n / elapsed, "handler_rows": seen}


# -- faasemu phases ------------------------------------------------------------------------------


def phase_ingress(up: Up, script: str, seconds: float, warmup: float, kinds: tuple[str, ...]) -> dict[str, Any]:
    """One server; for each kind (unsubscribed, subscribed): its floor (while the server is idle),
    a wrk warm-up, then the measured run. Floor and run are back to back: the machine is shared."""
    out: dict[str, Any] = {}
    for key in kinds:
        body = SUB_BODY if key == "subscribed" else TICK_BODY
        floor = floor_ingress(seconds / 2, with_delivery=key == "subscribed")
        run_wrk(up.port, script, body, 32, warmup)
        before = log_counts(up.events_db)
        cpu_before = up.cpu()
        result = run_wrk(up.port, script, body, 32, seconds)
        cpu_after = up.cpu()
        after = log_counts(up.events_db)
        result["supervisor_cpu_s"] = cpu_after[0] - cpu_before[0]
        result["workers_cpu_s"] = cpu_after[1] - cpu_before[1]
        result["supervisor_cpu_us_per_event"] = (
            result["supervisor_cpu_s"] / result["accepted"] * 1e6 if result["accepted"] else None)
        done_before = before["deliveries"].get("ingest-sub done", 0)
        done_after = after["deliveries"].get("ingest-sub done", 0)
        result["events_stored"] = after["events"] - before["events"]
        result["deliveries_acked"] = done_after - done_before
        result["delivery_rate"] = (done_after - done_before) / result["seconds"] if result["seconds"] else None
        result["backlog_after"] = after["deliveries"].get("ingest-sub pending", 0)
        result["floor"] = floor
        result["x_floor"] = ratio(result["rate"], floor["rate"])
        out[key] = result
    return out


def post_batches(up: Up, events: list[dict[str, Any]], batch: int, result: dict[str, Any]) -> None:
    """Post `events` in batches on one keep-alive connection; record statuses and when posting ended."""
    conn = http.client.HTTPConnection(HOST, up.port, timeout=60)
    statuses: Counter[int] = Counter()
    try:
        for i in range(0, len(events), batch):
            body = json.dumps(events[i:i + batch]).encode()
            conn.request("POST", INGRESS, body=body, headers={"content-type": "application/cloudevents-batch+json"})
            response = conn.getresponse()
            response.read()
            statuses[response.status] += 1
    except Exception as exc:  # reported, never raised: the bench goes on
        result["post_error"] = repr(exc)
    finally:
        conn.close()
        result["posted_at"] = time.perf_counter()
        result["post_statuses"] = dict(statuses)


def wait_settled(db: sqlite3.Connection, function: str, target: int, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if done_count(db, function) >= target:
            return True
        time.sleep(0.01)
    return False


def phase_delivery(up: Up, concurrency: int, n: int, batch: int, warm: int = 20) -> dict[str, Any]:
    function, event_type = DELIVER[concurrency]
    result: dict[str, Any] = {"function": function, "concurrency": concurrency, "events": n, "batch": batch}
    db = sqlite3.connect(up.events_db, timeout=10)
    try:
        # Warm-up: start the function's workers (cold starts are not what this measures).
        warm_result: dict[str, Any] = {}
        post_batches(up, [{"type": event_type, "data": {"n": 0}} for _ in range(warm)], warm, warm_result)
        if not wait_settled(db, function, warm, 20):
            result["error"] = f"warm-up deliveries not acknowledged within 20 s: {log_counts(up.events_db)}"
            return result
        base = done_count(db, function)
        events = [{"type": event_type, "data": {"n": i + 1}} for i in range(n)]
        cpu_before = up.cpu()
        started = time.perf_counter()
        poster = threading.Thread(target=post_batches, args=(up, events, batch, result))
        poster.start()
        polls = 0
        finished = None
        deadline = started + 120
        while time.perf_counter() < deadline:
            polls += 1
            if done_count(db, function) - base >= n:
                finished = time.perf_counter()
                break
            time.sleep(0.005)
        cpu_after = up.cpu()
        poster.join()
        result["supervisor_cpu_s"] = cpu_after[0] - cpu_before[0]
        result["workers_cpu_s"] = cpu_after[1] - cpu_before[1]
        result["supervisor_cpu_us_per_delivery"] = result["supervisor_cpu_s"] / n * 1e6
        result["workers_cpu_us_per_delivery"] = result["workers_cpu_s"] / n * 1e6
        result["polls"] = polls
        result["post_seconds"] = result["posted_at"] - started
        if finished is None:
            result["error"] = f"not all deliveries acknowledged within 120 s: {log_counts(up.events_db)}"
            return result
        result["seconds"] = finished - started
        result["rate"] = n / result["seconds"]
        result["attempts"] = db.execute("SELECT SUM(attempts) FROM deliveries WHERE function = ?",
                                        (function,)).fetchone()[0] - warm
    finally:
        db.close()
    state = sqlite3.connect(os.path.join(DOT_FAASEMU, "state.db"), timeout=10)
    try:
        result["handler_rows"] = state.execute("SELECT COUNT(*) FROM seen WHERE function = ?",
                                               (function,)).fetchone()[0] - warm
    finally:
        state.close()
    return result


# -- report --------------------------------------------------------------------------------------


def print_table(rows: list[list[str]], header: list[str]) -> None:
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def report(results: dict[str, Any]) -> None:
    ing = results["ingress"]
    dlv = results["delivery"]
    wrong: list[str] = []
    print()
    print(f"## bench_bus · {results['date']} · {results['cores']} cores · Python {results['python']} · "
          f"SQLite {results['sqlite']} · {results['seconds_total']:.0f} s")
    print()
    print(f"**1. Ingress** (wrk -t2 -c32 -d{results['args']['seconds']:g}s, plain JSON, medians of "
          f"{len(ing['rounds'])} interleaved rounds; only 202s counted)")
    print()
    rows = []
    def floors(keys: tuple[str, ...]) -> float | None:
        return median([r["faasemu"][k]["floor"]["rate"] for r in ing["rounds"] for k in keys if k in r["faasemu"]])

    rows.append(["floor: loop, 1 event row, 1 commit per event", fmt(floors(("unsubscribed", "unsubscribed_quiet"))),
                 "1.00x", "-", "-", "-", "-"])
    rows.append(["floor: loop, event row + 1 delivery row, 1 commit per event", fmt(floors(("subscribed",))),
                 "1.00x", "-", "-", "-", "-"])
    for key, label in (("unsubscribed", "faasemu up, `bench.tick` (no subscriber)"),
                       ("unsubscribed_quiet", "faasemu up --quiet, `bench.tick` (no subscriber)"),
                       ("subscribed", "faasemu up, `bench.sub` (1 subscriber, concurrency 1)")):
        runs = [r["faasemu"][key] for r in ing["rounds"] if key in r.get("faasemu", {})]
        if not runs:
            rows.append([label, "-", "-", "-", "-", "-", "-"])
            continue
        ratios = [run["x_floor"] for run in runs]
        other = sum(r["other"] for r in runs)
        sock = sum(r["socket_errors"] for r in runs)
        acked = median([r.get("delivery_rate") for r in runs]) if key == "subscribed" else None
        rows.append([f"**{label}**", fmt(median([r["rate"] for r in runs])),
                     f"**{fmt(median(ratios), 2)}x** (rounds: {', '.join(fmt(x, 2) for x in ratios)})",
                     f"{other}", f"{sock}", fmt(median([r["supervisor_cpu_us_per_event"] for r in runs])),
                     fmt(acked) if acked is not None else "-"])
        if other or sock:
            wrong.append(f"ingress {key}: {other} non-202 answers, {sock} socket errors "
                         f"({[r['statuses'] for r in runs]})")
        for r in runs:
            if r.get("error"):
                wrong.append(f"ingress {key}: {r['error']}")
            if r["events_stored"] < r["accepted"]:
                wrong.append(f"ingress {key}: {r['accepted']} answered 202 but {r['events_stored']} stored")
    print_table(rows, ["what", "events/s", "x floor", "non-202", "socket errors", "supervisor CPU µs/event",
                       "deliveries acked/s meanwhile"])
    backlog = [r["faasemu"]["subscribed"]["backlog_after"] for r in ing["rounds"] if "subscribed" in r.get("faasemu", {})]
    print()
    print(f"Deliveries of `bench.sub` still pending when each subscribed run ended (backlog): {backlog}")
    print()
    print(f"**2. Deliveries end to end** ({results['args']['events']:,} events posted in batches of "
          f"{results['args']['batch']} as application/cloudevents-batch+json, first post -> last acknowledgement "
          f"in the event log; medians of {len(dlv['rounds'])} interleaved rounds)")
    print()
    floor_rate = median([r[c]["floor"]["rate"] for r in dlv["rounds"] for c in ("c1", "c2") if c in r])
    rows = [["floor: handler in-process (its INSERT + commit), then 1 ack commit (UPDATE of the delivery row)",
             fmt(floor_rate), fmt(1e6 / floor_rate) if floor_rate else "-", "1.00x", "-", "-", "-", "-", "-"]]
    for c in (1, 2):
        runs = [r[f"c{c}"] for r in dlv["rounds"] if r.get(f"c{c}", {}).get("rate")]
        ratios = [r[f"c{c}"].get("x_floor") for r in dlv["rounds"] if f"c{c}" in r]
        rate = median([r["rate"] for r in runs])
        rows.append([f"**faasemu up, concurrency {c}**", fmt(rate), fmt(1e6 / rate) if rate else "-",
                     f"**{fmt(median([x for x in ratios if x]), 2)}x** (rounds: "
                     f"{', '.join(fmt(x, 2) for x in ratios)})",
                     fmt(median([r["post_seconds"] * 1000 for r in runs])),
                     fmt(median([r.get("call_ms_mean") for r in runs]), 3),
                     fmt(median([r["supervisor_cpu_us_per_delivery"] for r in runs])),
                     fmt(median([r["workers_cpu_us_per_delivery"] for r in runs])),
                     f"{sum(r['attempts'] for r in runs)} / {sum(r['handler_rows'] for r in runs)}"])
        for r in [r[f"c{c}"] for r in dlv["rounds"] if f"c{c}" in r]:
            if r.get("error") or r.get("post_error"):
                wrong.append(f"delivery c{c}: {r.get('error') or r.get('post_error')}")
            elif r["attempts"] != r["events"] or r["handler_rows"] != r["events"]:
                wrong.append(f"delivery c{c}: {r['events']} events, {r['attempts']} attempts, "
                             f"{r['handler_rows']} handler rows")
            if any(code != 202 for code in r.get("post_statuses", {})):
                wrong.append(f"delivery c{c}: post statuses {r['post_statuses']}")
    print_table(rows, ["what", "deliveries/s", "µs per delivery", "x floor", "posting took (ms)",
                       "logged call ms (mean)", "supervisor CPU µs/delivery", "workers CPU µs/delivery",
                       "attempts / handler rows"])
    print()
    for name, summary in results["consoles"].items():
        for line in summary["suspicious"]:
            wrong.append(f"console of {name}: {line}")
    lines = sum(s["lines"] for s in results["consoles"].values())
    size = sum(s["bytes"] for s in results["consoles"].values())
    print(f"Console output of `faasemu up` (default, to files): {lines:,} lines, {size / 1e6:.1f} MB.")
    left = results.get("left_behind", 0)
    if left:
        wrong.append(f"{left} worker processes left running after SIGTERM (killed by the bench)")
    for r in ing["rounds"] + dlv["rounds"]:
        if r.get("error"):
            wrong.append("a round failed: " + r["error"].strip().splitlines()[-1])
    print()
    print("Looked wrong: " + ("none" if not wrong else ""))
    for line in wrong:
        print(f"- {line}")


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write every figure and raw wrk output as JSON")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=4.0, help="each measured wrk run (default 4)")
    parser.add_argument("--events", type=int, default=3000, help="events per delivery run (default 3,000)")
    parser.add_argument("--batch", type=int, default=500, help="events per batch POST (default 500, max 1,000)")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s wrk runs, 1,000 events")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' console files")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.events = 1, 2.0, 1000
    if not os.path.exists(WRK):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    log_dir = tempfile.mkdtemp(prefix="faasemu-bench-bus-")
    script = os.path.join(log_dir, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(), "cores": os.cpu_count(), "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version, "kernel": platform.release(), "args": vars(args),
        "ingress": {"rounds": []}, "delivery": {"rounds": []}, "consoles": {}, "left_behind": 0,
    }
    servers: list[Up] = []
    try:
        for i in range(args.rounds):
            print(f"ingress round {i + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
            rnd: dict[str, Any] = {"faasemu": {}}
            for tag, extra, kinds in ((f"ingress-{i}", (), ("unsubscribed", "subscribed")),
                                      (f"ingress-quiet-{i}", ("--quiet",), ("unsubscribed",))):
                up = Up(log_dir, tag, extra)
                servers.append(up)
                try:
                    up.start()
                    found = phase_ingress(up, script, args.seconds, 1.0, kinds)
                    rnd["faasemu"].update({k + ("_quiet" if extra else ""): v for k, v in found.items()})
                except Exception:
                    rnd["error"] = traceback.format_exc()
                    print(rnd["error"], file=sys.stderr)
                finally:
                    up.stop()
                    results["left_behind"] += len(up.left_behind)
                    results["consoles"][up.tag] = console_summary(up.stdout_path)
            results["ingress"]["rounds"].append(rnd)
        for i in range(args.rounds):
            print(f"delivery round {i + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
            rnd = {}
            up = Up(log_dir, f"delivery-{i}")
            servers.append(up)
            try:
                up.start()
                for c in ((1, 2) if i % 2 == 0 else (2, 1)):
                    floor = floor_delivery(args.events)  # back to back with the run it is compared with
                    rnd[f"c{c}"] = phase_delivery(up, c, args.events, args.batch)
                    rnd[f"c{c}"]["floor"] = floor
                    rnd[f"c{c}"]["x_floor"] = ratio(rnd[f"c{c}"].get("rate"), floor["rate"])
            except Exception:
                rnd["error"] = traceback.format_exc()
                print(rnd["error"], file=sys.stderr)
            finally:
                up.stop()
                results["left_behind"] += len(up.left_behind)
                summary = console_summary(up.stdout_path)
                results["consoles"][up.tag] = summary
                for c in (1, 2):
                    if f"c{c}" in rnd:
                        rnd[f"c{c}"]["call_ms_mean"] = summary["call_ms_mean"].get(DELIVER[c][0])
            results["delivery"]["rounds"].append(rnd)
    finally:
        for up in servers:
            up.stop()
        remove_db(os.path.join(DOT_FAASEMU, "events.db"))
        remove_db(os.path.join(DOT_FAASEMU, "state.db"))
        shutil.rmtree(FLOOR_DIR, ignore_errors=True)
        try:
            os.unlink(os.path.join(DOT_FAASEMU, "up.json"))
        except FileNotFoundError:
            pass
    results["seconds_total"] = time.perf_counter() - started
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    if args.keep_logs:
        print(f"\nconsole files kept in {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
