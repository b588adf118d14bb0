"""Cold starts with the fork server against fresh interpreters, in the same run (issue 13, target 2).

1. cold start: spawn + load + first request of a one-line handler, forked and as a fresh
   `python -m faasemu.workers.entry` (FAASEMU_FORKSERVER=0), interleaved so that both see the same
   load on the machine; with the fork server already running (a function's first request in a
   running `up`, a reload, a campaign's spare) and, once, including the server's own start;
2. memory: the fork server's and one worker's resident memory, forked and fresh;
3. hot reload under load: bench_up.py's reload phase (ms from the write of handler.py to the first
   response with the new body, every request checked), one `faasemu up` per mode;
4. the campaign's per-run fixed cost: 2-delivery runs (one per function) of faasemu's campaign
   runner over bench/chaos_project, lanes in parallel, as bench_chaos.py measures it, in a child
   process per mode.

    python bench/bench_coldstart.py [--rounds 20] [--json out.json]

Prints a table; every figure is a median of `--rounds`, each ratio between the two modes of this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
CHAOS_PROJECT = os.path.join(BENCH, "chaos_project")
HANDLER = "def handler(event, context):\n    return {'ok': True}\n"


def write_project(root: str) -> None:
    with open(os.path.join(root, "faasemu.yaml"), "w") as file:
        file.write("functions:\n  f:\n    handler: app.py:handler\n")
    with open(os.path.join(root, "app.py"), "w") as file:
        file.write(HANDLER)


async def cold_start(root: str, spec: Any) -> tuple[float, float, Any]:
    """(ms from spawn to the first answer, the worker's own load ms, the worker)."""
    from faasemu.workers.process import WorkerProcess

    started = time.perf_counter()
    worker = await WorkerProcess.spawn(root, lambda line: None)
    ready = await worker.load(spec.to_wire(), root, {}, 10)
    await worker.request({"op": "raw", "id": 1, "inv": {"request_id": "r", "deadline": time.time() + 10}}, b"{}", 10)
    return (time.perf_counter() - started) * 1000, ready["ms"], worker


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def phase_cold(rounds: int) -> dict[str, Any]:
    from faasemu.project.manifest import load_manifest
    from faasemu.workers import forkserver

    root = tempfile.mkdtemp(prefix="faasemu-bench-cold-")
    write_project(root)
    spec = load_manifest(os.path.join(root, "faasemu.yaml")).function("f")
    out: dict[str, Any] = {"forked": [], "fresh": [], "forked_load": [], "fresh_load": []}

    async def main() -> None:
        os.environ[forkserver.ENV_SWITCH] = "1"
        first, _, keep = await cold_start(root, spec)  # includes starting the fork server
        out["first_with_server_start"] = first
        out["server_rss_mib"] = rss_mib(forkserver.running_servers()[0])
        out["forked_worker_rss_mib"] = rss_mib(keep.pid)
        for _ in range(rounds):
            for mode in ("forked", "fresh"):
                os.environ[forkserver.ENV_SWITCH] = "1" if mode == "forked" else "0"
                ms, load_ms, worker = await cold_start(root, spec)
                out[mode].append(ms)
                out[f"{mode}_load"].append(load_ms)
                if mode == "fresh":
                    out["fresh_worker_rss_mib"] = rss_mib(worker.pid)
                await worker.terminate()
        await keep.terminate()

    try:
        asyncio.run(main())
    finally:
        os.environ.pop(forkserver.ENV_SWITCH, None)
        shutil.rmtree(root, ignore_errors=True)
    return out


ENGINE = """\
import asyncio, json, os, sys, time
sys.path.insert(0, {bench!r})
from bench_chaos import load_make_events
from faasemu.chaos.model import canonical
from faasemu.events.files import read_events_file
from faasemu.project.manifest import load_manifest
from faasemu.verify.model import Candidate
from faasemu.verify.runner import Runner

manifest = load_manifest(os.path.join({project!r}, "faasemu.yaml"))
events = read_events_file({events!r})
refs = canonical(events, manifest.functions)
out = {{}}

async def main():
    runner = Runner(manifest, events, refs, 1)
    out["lanes"] = runner.lane_count
    async with runner:
        await asyncio.sleep(0.5)
        tiny = Candidate(frozenset({{0, 1}}))
        count = 2 * runner.lane_count * {rounds}
        started = time.perf_counter()
        await runner.run_many([tiny] * count)
        out["tiny_run_ms"] = (time.perf_counter() - started) * 1000 * runner.lane_count / count
        out["runs"] = count

asyncio.run(main())
print(json.dumps(out))
"""


def phase_campaign(rounds: int) -> dict[str, Any]:
    sys.path.insert(0, BENCH)
    from bench_chaos import load_make_events

    tmp = tempfile.mkdtemp(prefix="faasemu-bench-cold-chaos-")
    project = os.path.join(tmp, "project")
    shutil.copytree(CHAOS_PROJECT, project, ignore=shutil.ignore_patterns(".faasemu", "__pycache__", "events*.jsonl"))
    events = os.path.join(project, "events.jsonl")
    load_make_events().write(events, 50, 15)
    out: dict[str, Any] = {}
    try:
        for _repeat in range(2):  # interleaved: forked, fresh, forked, fresh
            for mode in ("forked", "fresh"):
                script = ENGINE.format(bench=BENCH, project=project, events=events, rounds=rounds)
                env = {**os.environ, "FAASEMU_FORKSERVER": "1" if mode == "forked" else "0"}
                done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                      timeout=600, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                out.setdefault(mode, []).append(result["tiny_run_ms"])
                out["lanes"] = result["lanes"]
                out["runs"] = result["runs"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def phase_reload(edits: int) -> dict[str, Any]:
    sys.path.insert(0, BENCH)
    import bench_up

    out: dict[str, Any] = {}
    log_dir = tempfile.mkdtemp(prefix="faasemu-bench-cold-reload-")
    try:
        for mode in ("forked", "fresh"):
            os.environ["FAASEMU_FORKSERVER"] = "1" if mode == "forked" else "0"  # `up` inherits it
            result = bench_up.phase_reload(log_dir, edits)
            out[mode] = {key: result.get(key) for key in ("median_ms", "p90_ms", "max_ms", "failed_total",
                                                           "load_ok", "timeouts")}
    finally:
        os.environ.pop("FAASEMU_FORKSERVER", None)
        shutil.rmtree(log_dir, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="cold starts per mode (default 20)")
    parser.add_argument("--campaign-rounds", type=int, default=10, help="tiny runs per lane per mode (default 10)")
    parser.add_argument("--edits", type=int, default=10, help="reloads per mode (default 10)")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cold = phase_cold(args.rounds)
    campaign = phase_campaign(args.campaign_rounds)
    reload = phase_reload(args.edits)
    med = statistics.median
    forked, fresh = med(cold["forked"]), med(cold["fresh"])
    rows = [
        ("cold start, fork server running (spawn+load+first request)", f"{forked:.1f} ms", f"{fresh:.1f} ms",
         f"{fresh / forked:.1f}x faster"),
        ("  of which the worker's load (runtime + handler import)", f"{med(cold['forked_load']):.1f} ms",
         f"{med(cold['fresh_load']):.1f} ms", ""),
        ("first cold start including the fork server's start", f"{cold['first_with_server_start']:.1f} ms", "", ""),
        ("resident memory: worker", f"{cold['forked_worker_rss_mib']:.1f} MiB",
         f"{cold['fresh_worker_rss_mib']:.1f} MiB", ""),
        ("resident memory: the fork server", f"{cold['server_rss_mib']:.1f} MiB", "-", ""),
    ]
    forked_run, fresh_run = med(campaign["forked"]), med(campaign["fresh"])
    rows.append((f"campaign fixed cost per run ({campaign['lanes']} lanes, {campaign['runs']} 2-delivery runs)",
                 f"{forked_run:.1f} ms", f"{fresh_run:.1f} ms", f"{fresh_run / forked_run:.1f}x cut"))
    rf, rs = reload["forked"], reload["fresh"]
    rows.append(("hot reload under load: median (p90) save to new code",
                 f"{rf['median_ms']:.1f} ms ({rf['p90_ms']:.1f}), {rf['failed_total']} failed of {rf['load_ok']}",
                 f"{rs['median_ms']:.1f} ms ({rs['p90_ms']:.1f}), {rs['failed_total']} failed of {rs['load_ok']}",
                 f"{rs['median_ms'] / rf['median_ms']:.1f}x faster"))
    print(f"load average at start: {load}; after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| measure | fork server | fresh interpreter | ratio |\n| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"load": load, "cold": cold, "campaign": campaign, "reload": reload}, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
