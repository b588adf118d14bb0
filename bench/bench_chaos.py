#!/usr/bin/env python3
"""Performance figures of `faasemu chaos`, each against a floor measured in the same run.

    python bench/bench_chaos.py [--json FILE] [--limit S] [--quick]

A benchmark, not a test: it never fails on a figure, it prints them (see bench/README.md for what
each one means and the targets). It copies bench/chaos_project/ into a temporary folder, writes
the events files there (bench/chaos_project/make_events.py), and measures, in order:

1. the floor: the app's handler functions imported into this process and called in a plain loop
   over the same deliveries (canonical order), against a fresh copy of the same schema on the
   filesystem the campaign's lanes use (/dev/shm when it exists), one commit per event as the
   handlers do;
2. the engine: faasemu's campaign runner (faasemu.verify.runner.Runner, the lanes a campaign runs
   in) executing baseline schedules over 1,000 events, in parallel lanes and one at a time, a
   2-delivery schedule (the fixed cost of a run), and one traced run (what calibration does);
3. `faasemu chaos EVENTS --runs 20 --seed 1` of the correct app over 50 events: deliveries/s from
   its summary line against the floor;
4. `faasemu chaos EVENTS --runs 100 --seed 1` of the correct app over 1,000 events: wall time,
   stopped (SIGINT) after --limit seconds;
5. the buggy variant (a naive counter) over 50 events, `--runs 20`: the time including shrinking;
6. `faasemu chaos EVENTS --runs 100 --seed 1` of the correct app over 20 events: the wall time of a
   small campaign, where the fixed costs (start, calibration, probes, per-run set-up) dominate.

Every faasemu process is started in a session of its own and stopped in a `finally`; the
temporary folders are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
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
import time
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_up import faasemu_command, fmt  # noqa: E402  (shared helpers)

BENCH = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(BENCH, "chaos_project")
SUMMARY = re.compile(r"(\d+)\s+runs,\s+(\d+)\s+deliveries\s+in\s+([\d.]+)\s+s")
SHM = "/dev/shm"


def ram_or_tmp() -> str:
    return SHM if os.path.isdir(SHM) and os.access(SHM, os.W_OK) else tempfile.gettempdir()


def lane_folders() -> set[str]:
    """faasemu's lane folders (`faasemu-chaos-*`) in /dev/shm: any left behind is reported."""
    try:
        return {name for name in os.listdir(SHM) if name.startswith("faasemu-chaos-")}
    except OSError:
        return set()


def load_make_events() -> Any:
    spec = importlib.util.spec_from_file_location("bench_make_events", os.path.join(PROJECT, "make_events.py"))
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# -- 1. the floor ----------------------------------------------------------------------------------


class Context:
    """A stand-in for the Lambda context: the handlers do not read it."""

    aws_request_id = "bench"
    function_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


def deliveries_of(project: str, manifest: str, events_path: str) -> list[tuple[str, dict[str, Any]]]:
    """(function name, Lambda event) in canonical order, the events built as the worker builds them."""
    from faasemu.chaos.model import canonical
    from faasemu.events.files import read_events_file
    from faasemu.project.manifest import load_manifest
    from faasemu.runtimes.aws_lambda import build_event
    from faasemu.runtimes.base import Delivery

    m = load_manifest(os.path.join(project, manifest))
    events = read_events_file(events_path)
    specs = {spec.name: spec for spec in m.functions}
    out = []
    for ref in canonical(events, m.functions):
        event = events[ref.event_index]
        out.append((ref.function, build_event("eventbridge", Delivery(event, 1, f"{event['id']}-1"), specs[ref.function])))
    return out


def phase_floor(project: str, events_path: str, repeats: int) -> dict[str, Any]:
    deliveries = deliveries_of(project, "faasemu.yaml", events_path)
    spec = importlib.util.spec_from_file_location("bench_chaos_handlers", os.path.join(project, "handlers.py"))
    handlers = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(handlers)
    functions = {"upsert-order": handlers.upsert_order, "count-order": handlers.count_order}
    calls = [(functions[name], event) for name, event in deliveries]
    folder = tempfile.mkdtemp(prefix="faasemu-bench-floor-", dir=ram_or_tmp())
    template = os.path.join(folder, "template.db")
    with open(os.path.join(project, "schema.sql"), encoding="utf-8") as f:
        schema = f.read()
    db = sqlite3.connect(template)
    db.executescript(schema)
    db.commit()
    db.close()
    context = Context()
    seconds = []
    old_state = os.environ.get("FAASEMU_STATE")
    try:
        for number in range(repeats):
            state = os.path.join(folder, f"state-{number}.db")
            shutil.copyfile(template, state)
            os.environ["FAASEMU_STATE"] = state
            started = time.perf_counter()
            for fn, event in calls:
                fn(event, context)
            seconds.append(time.perf_counter() - started)
            rows = sqlite3.connect(state).execute("SELECT count(*), (SELECT sum(n) FROM sku_events) FROM processed").fetchone()
        if handlers._db is not None:
            handlers._db.close()
            handlers._db = None
    finally:
        if old_state is None:
            os.environ.pop("FAASEMU_STATE", None)
        else:
            os.environ["FAASEMU_STATE"] = old_state
        shutil.rmtree(folder, ignore_errors=True)
    best = statistics.median(seconds)
    return {"deliveries": len(calls), "repeats": repeats, "seconds": seconds, "median_s": best,
            "per_s": len(calls) / best, "filesystem": os.path.dirname(folder), "check_rows": list(rows)}


# -- 2. the engine (faasemu's campaign runner, in this process) -----------------------------------


def phase_engine(project: str, events_path: str, rounds: int, traced: bool) -> dict[str, Any]:
    from faasemu.chaos.model import canonical
    from faasemu.events.files import read_events_file
    from faasemu.project.manifest import load_manifest
    from faasemu.verify.model import Candidate
    from faasemu.verify.runner import Runner

    manifest = load_manifest(os.path.join(project, "faasemu.yaml"))
    events = read_events_file(events_path)
    refs = canonical(events, manifest.functions)
    out: dict[str, Any] = {"deliveries_per_run": len(refs)}

    async def main() -> None:
        runner = Runner(manifest, events, refs, 1)
        out["lanes"] = runner.lane_count
        async with runner:
            await asyncio.sleep(0.5)  # let the lanes pre-start their spare workers, as between runs
            # The fixed cost of a run: a 2-delivery schedule (one per function), lanes in parallel.
            tiny = Candidate(frozenset({0, 1}))
            count = 2 * runner.lane_count * rounds
            started = time.perf_counter()
            await runner.run_many([tiny] * count)
            out["tiny_runs"] = count
            out["tiny_run_ms"] = (time.perf_counter() - started) * 1000 * runner.lane_count / count
            # Full baseline runs, lanes in parallel (what a campaign does).
            before = runner.deliveries
            count = runner.lane_count * rounds
            started = time.perf_counter()
            await runner.run_many([Candidate()] * count)
            wall = time.perf_counter() - started
            out["parallel"] = {"runs": count, "deliveries": runner.deliveries - before, "seconds": wall,
                               "per_s": (runner.deliveries - before) / wall}
            # One lane, one run at a time, spares pre-started: the cost of one run.
            single = []
            for _ in range(rounds):
                await asyncio.sleep(0.3)
                started = time.perf_counter()
                await runner.run(runner.lanes[0], Candidate())
                single.append(time.perf_counter() - started)
            out["single_run_s"] = statistics.median(single)
            out["single_per_s"] = len(refs) / out["single_run_s"]
            if traced:
                started = time.perf_counter()
                await runner.run(runner.lanes[0], Candidate(), trace=True)
                out["traced_run_s"] = time.perf_counter() - started

    asyncio.run(main())
    return out


# -- 3-5. faasemu chaos on the command line -------------------------------------------------------


def run_chaos(project: str, manifest: str, events_path: str, runs: int, limit: float, log_dir: str,
              label: str) -> dict[str, Any]:
    command = faasemu_command() + ["chaos", events_path, "-f", os.path.join(project, manifest),
                                   "--runs", str(runs), "--seed", "1", "--json", os.path.join(log_dir, f"{label}.json")]
    stdout_path = os.path.join(log_dir, f"{label}.out")
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    out: dict[str, Any] = {"command": " ".join(["faasemu"] + command[len(faasemu_command()):]), "limit_s": limit}
    with open(stdout_path, "wb") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=project, stdout=stdout, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            out["exit"] = process.wait(timeout=limit)
            out["finished"] = True
        except subprocess.TimeoutExpired:
            out["finished"] = False
            process.send_signal(signal.SIGINT)  # as Ctrl+C: the campaign closes its lanes
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            out["exit"] = process.returncode
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        out["wall_s"] = time.perf_counter() - started
    with open(stdout_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    out["tail"] = text[-1500:]
    found = SUMMARY.findall(" ".join(text.split()))
    if found:
        runs_done, deliveries, seconds = found[-1]
        out.update(runs_executed=int(runs_done), deliveries_executed=int(deliveries), campaign_s=float(seconds),
                   per_s=int(deliveries) / float(seconds) if float(seconds) else None)
    try:
        with open(os.path.join(log_dir, f"{label}.json"), encoding="utf-8") as f:
            report = json.load(f)
        out["verdicts"] = {name: {k: v.get(k) for k in ("idempotent", "order_tolerant")} | {
            "violations": [x.get("kind") for x in v.get("violations", [])]}
            for name, v in report.get("functions", {}).items()}
    except (OSError, ValueError):
        pass
    return out


# -- report ----------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    meta = results["meta"]
    add("")
    add(f"faasemu chaos benchmark · {meta['date']} · {meta['cpus']} CPUs · Python {meta['python']} · "
        f"load average at start {meta['load_at_start']}")
    fl = results.get("floor") or {}
    fl50 = results.get("floor_50") or {}
    add("")
    add("1. Deliveries per second: the campaign against the in-process floor (same handlers, same deliveries, "
        f"SQLite on {fl.get('filesystem', '?')})")
    add(f"  {'what':<62}{'deliveries':>11}{'seconds':>9}{'deliv/s':>10}{'x floor':>9}")

    def row(what: str, deliveries: Any, seconds: Any, per_s: Any, floor: Any) -> None:
        ratio = per_s / floor if per_s and floor else None
        add(f"  {what:<62}{fmt(deliveries, 0) if deliveries is not None else '-':>11}{fmt(seconds, 2):>9}"
            f"{fmt(per_s, 0):>10}{fmt(ratio, 3, 'x'):>9}")

    if fl:
        row(f"floor, 1,000 events (median of {fl['repeats']})", fl["deliveries"], fl["median_s"], fl["per_s"], fl["per_s"])
    if fl50:
        row(f"floor, 50 events (median of {fl50['repeats']})", fl50["deliveries"], fl50["median_s"],
            fl50["per_s"], fl50["per_s"])
    en = results.get("engine") or {}
    if en.get("parallel"):
        p = en["parallel"]
        row(f"runner, 1,000 events, {p['runs']} baseline runs in {en['lanes']} lanes", p["deliveries"], p["seconds"],
            p["per_s"], fl.get("per_s"))
        row("runner, 1,000 events, one run alone (median)", en["deliveries_per_run"], en["single_run_s"],
            en["single_per_s"], fl.get("per_s"))
    c20 = results.get("chaos_50_runs20") or {}
    if c20.get("per_s"):
        row(f"faasemu chaos --runs 20, 50 events ({c20['runs_executed']} runs)", c20["deliveries_executed"],
            c20["campaign_s"], c20["per_s"], fl50.get("per_s"))
    c100 = results.get("chaos_1000_runs100") or {}
    if c100.get("per_s"):
        row(f"faasemu chaos --runs 100, 1,000 events ({c100['runs_executed']} runs)", c100["deliveries_executed"],
            c100["campaign_s"], c100["per_s"], fl.get("per_s"))
    add("  target: a campaign at >= 0.3x the floor")
    if en:
        add(f"  fixed cost of one run (2-delivery schedule, lanes in parallel): {fmt(en.get('tiny_run_ms'), 0)} ms; "
            f"traced run (calibration's first baseline, a snapshot after every delivery), 1,000 events: "
            f"{fmt(en.get('traced_run_s'), 1)} s")

    add("")
    add("2. Wall time of campaigns (faasemu chaos ... --seed 1; stopped with SIGINT at the limit)")
    add(f"  {'campaign':<46}{'wall s':>8}{'runs':>7}{'deliveries':>12}{'exit':>6}  verdicts")
    for key, label in (("chaos_50_runs20", "correct app, 50 events, --runs 20"),
                       ("chaos_1000_runs100", "correct app, 1,000 events, --runs 100"),
                       ("chaos_20_runs100", "correct app, 20 events, --runs 100"),
                       ("buggy_50_runs20", "buggy app (naive counter), 50 events, --runs 20")):
        c = results.get(key)
        if not c:
            continue
        wall = fmt(c["wall_s"], 1) if c.get("finished") else f">{c['limit_s']:.0f}"
        verdicts = "; ".join(f"{n}: {'idem' if v['idempotent'] else 'NOT idem'}/"
                             f"{'order-ok' if v['order_tolerant'] else 'NOT order-tolerant'}"
                             for n, v in (c.get("verdicts") or {}).items()) or ("(stopped: no report)"
                                                                                 if not c.get("finished") else "-")
        add(f"  {label:<46}{wall:>8}{c.get('runs_executed', '-'):>7}{fmt(c.get('deliveries_executed'), 0) if c.get('deliveries_executed') else '-':>12}"
            f"{c.get('exit', '-'):>6}  {verdicts}")
    add("  targets: 1,000 events, --runs 100 in <= 60 s, exit 0; 20 events, --runs 100 in < 3 s")

    anomalies = anomalies_of(results)
    if results.get("errors"):
        add("")
        add("Errors:")
        for phase, text in results["errors"].items():
            add(f"  {phase}: {text}")
    if anomalies:
        add("")
        add("Looked wrong:")
        lines.extend(f"  - {a}" for a in anomalies)
    return "\n".join(lines)


def anomalies_of(results: dict[str, Any]) -> list[str]:
    found = []
    for key in ("chaos_50_runs20", "chaos_1000_runs100", "chaos_20_runs100"):
        c = results.get(key) or {}
        if c.get("finished") and c.get("exit") != 0:
            found.append(f"!!! {key}: faasemu chaos exited {c.get('exit')} on a CORRECT app (a bug in faasemu): "
                         f"{c.get('tail', '')[-600:]}")
        if c and not c.get("finished"):
            found.append(f"{key}: did not finish within {c['limit_s']:.0f} s (stopped with SIGINT, exit {c.get('exit')})")
    b = results.get("buggy_50_runs20") or {}
    if b.get("finished") and b.get("exit") != 1:
        found.append(f"buggy_50_runs20: faasemu chaos exited {b.get('exit')} on the buggy app (expected 1)")
    if results.get("left_lane_folders"):
        found.append(f"faasemu-chaos-* folders in /dev/shm that appeared during this run and remain: "
                     f"{results['left_lane_folders']} (another process's campaign may own some)")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--limit", type=float, default=65.0,
                        help="seconds after which the 1,000-event campaign is stopped (default 65; target 60)")
    parser.add_argument("--limit-small", type=float, default=60.0,
                        help="seconds after which each 50-event campaign is stopped (default 60)")
    parser.add_argument("--quick", action="store_true", help="skip the traced run and the buggy variant; 1 round")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (project copy, outputs)")
    args = parser.parse_args()

    make_events = load_make_events()
    tmp = tempfile.mkdtemp(prefix="faasemu-bench-chaos-")
    project = os.path.join(tmp, "project")
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns(".faasemu", "__pycache__", "events*.jsonl"))
    events_1000 = os.path.join(project, "events.jsonl")
    events_50 = os.path.join(project, "events50.jsonl")
    events_20 = os.path.join(project, "events20.jsonl")
    distinct_1000 = make_events.write(events_1000, 1000, 300)
    distinct_50 = make_events.write(events_50, 50, 15)
    distinct_20 = make_events.write(events_20, 20, 6)
    lanes_before = lane_folders()
    began = time.perf_counter()
    rounds = 1 if args.quick else 3
    results: dict[str, Any] = {
        "meta": {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                 "load_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                 "events": {"1000": {"lines": 1000, "distinct_orders": distinct_1000},
                            "50": {"lines": 50, "distinct_orders": distinct_50},
                            "20": {"lines": 20, "distinct_orders": distinct_20}}},
        "errors": {},
    }
    phases = [
        ("floor", lambda: phase_floor(project, events_1000, 5)),
        ("floor_50", lambda: phase_floor(project, events_50, 5)),
        ("engine", lambda: phase_engine(project, events_1000, rounds, not args.quick)),
        ("chaos_50_runs20", lambda: run_chaos(project, "faasemu.yaml", events_50, 20, args.limit_small, tmp, "c50")),
        ("chaos_1000_runs100", lambda: run_chaos(project, "faasemu.yaml", events_1000, 100, args.limit, tmp, "c1000")),
        ("chaos_20_runs100", lambda: run_chaos(project, "faasemu.yaml", events_20, 100, args.limit_small, tmp, "c20")),
    ]
    if not args.quick:
        phases.append(("buggy_50_runs20",
                       lambda: run_chaos(project, "faasemu-buggy.yaml", events_50, 20, args.limit_small, tmp, "b50")))
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
        deadline = time.monotonic() + 5.0  # a stopped campaign removes its lanes as it exits
        while lane_folders() - lanes_before and time.monotonic() < deadline:
            time.sleep(0.1)
        results["left_lane_folders"] = sorted(lane_folders() - lanes_before)
        if args.keep:
            print(f"temporary folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(results))
    print(f"\n(total {results['meta']['seconds']} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
