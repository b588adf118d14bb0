#!/usr/bin/env python3
"""HTTP requests/s of every runtime of `faasemu up`, each next to aws-lambda measured in the same run.

    python bench/bench_runtimes.py [--rounds N] [--seconds S] [--c1] [--json FILE] [--quick]

A benchmark, not a test: it never fails on a figure (see bench/README.md, "bench_runtimes").
bench/runtimes_project/ holds one trivial HTTP handler per runtime, each answering the 2-byte body
"ok" in its platform's convention, and one manifest per SDK family; every manifest also serves the
aws-lambda handler on GET /ok. Each manifest is served by `<python> -m faasemu up`, where <python>
is an interpreter that has that family's SDK (the runtimes that need none use this interpreter), so
each ratio compares the runtime with aws-lambda served by the same interpreter and supervisor.

Per environment: start `faasemu up`, check that every route answers 200 "ok" (a route that does
not is reported and not measured), warm each route up for 1 s, then in each round run
`wrk -t2 -c32` against aws-lambda and each runtime, one after another (the order reversed in every
other round). Reported: median req/s over rounds and the median over rounds of runtime / aws-lambda
in the same round. Everything listens on 127.0.0.1; every process started here is stopped in a
`finally`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_up import HOST, UNIT_MS, WRK, Server, console_summary, fmt, get, median  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(BENCH, "runtimes_project")
LAMBDA_ROUTE = "/ok"

# (environment, option naming its Python, default Python, manifest, [(runtime, route), ...])
ENVIRONMENTS: list[tuple[str, str, str, str, list[tuple[str, str]]]] = [
    ("no SDK", "python", sys.executable, "faasemu.yaml",
     [("vercel", "/api/ok"), ("openfaas", "/function/ok"), ("kubeless", "/kubeless-ok"),
      ("netlify", "/.netlify/functions/netlify-ok")]),
    ("gcf", "gcf_python", "/tmp/venv-gcf/bin/python", "faasemu-gcf.yaml", [("gcf", "/gcf-ok")]),
    ("knative", "knative_python", "/tmp/venv-knative/bin/python", "faasemu-knative.yaml",
     [("knative", "/knative-ok")]),
    ("azure", "azure_python", "/tmp/venv-azure/bin/python", "faasemu-azure.yaml", [("azure", "/api/azure-ok")]),
]


def run_wrk(port: int, route: str, threads: int, connections: int, seconds: float) -> dict[str, Any]:
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s",
           f"http://{HOST}:{port}{route}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    out = proc.stdout
    result: dict[str, Any] = {"cmd": " ".join(cmd[1:]), "rps": None, "requests": 0, "p50_ms": None,
                              "non2xx": 0, "socket_errors": 0, "raw": out + proc.stderr}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        result["requests"] = int(m.group(1))
    if m := re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        result["p50_ms"] = float(m.group(1)) * UNIT_MS[m.group(2)]
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        result["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        result["socket_errors"] = sum(int(g) for g in m.groups())
    if proc.returncode != 0 or result["rps"] is None:
        result["error"] = f"wrk exited {proc.returncode}: {proc.stderr.strip() or out.strip()}"
    return result


def measure_environment(env: str, python: str, manifest: str, runtimes: list[tuple[str, str]], log_dir: str,
                        rounds: int, seconds: float, configs: list[tuple[int, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {"python": python, "manifest": os.path.relpath(manifest, BENCH), "checks": {},
                           "skipped": {}, "runs": {}, "summary": {}}
    if not os.path.exists(python):
        raise RuntimeError(f"{python} not found")
    server = Server(f"faasemu-{env}", lambda port: [python, "-m", "faasemu", "up", "-f", manifest, "--port", str(port)],
                    log_dir, cwd=PROJECT)
    try:
        server.start()
        out["ready_ms"] = server.wait_ready()  # polls the aws-lambda route /ok
        targets = [("aws-lambda", LAMBDA_ROUTE)]
        for name, route in [("aws-lambda", LAMBDA_ROUTE), *runtimes]:
            status, body = get(server.port, route)
            out["checks"][name] = {"route": route, "status": status, "body": body[:300].decode(errors="replace")}
            print(f"  [{env}] check {name:<10} GET {route:<30} -> {status} {body[:80]!r}", flush=True)
            if status != 200 or body != b"ok":
                out["skipped"][name] = f"GET {route} answered {status} {body[:200]!r}, not 200 'ok'"
                if name == "aws-lambda":
                    raise RuntimeError(out["skipped"][name])
            elif name != "aws-lambda":
                targets.append((name, route))
        for name, route in targets:  # warm-up: 1 s at 32 connections (starts both workers of each function)
            warm = run_wrk(server.port, route, 2, 32, 1)
            print(f"  [{env}] warm-up {name:<10} {fmt(warm['rps'], 0):>7} req/s", flush=True)
        out["runs"] = {name: {c: [] for _, c in configs} for name, _ in targets}
        for r in range(rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for threads, conns in configs:
                for name, route in order:
                    result = run_wrk(server.port, route, threads, conns, seconds)
                    out["runs"][name][conns].append(result)
                    print(f"  [{env}] round {r + 1} {name:<10} c={conns:<3} {fmt(result['rps'], 0):>7} req/s  "
                          f"p50 {fmt(result['p50_ms'], 3)} ms  non-2xx {result['non2xx']}  "
                          f"socket errors {result['socket_errors']}{'  ' + result['error'] if 'error' in result else ''}",
                          flush=True)
        for name, _ in targets:
            out["summary"][name] = {}
            for _, conns in configs:
                mine = out["runs"][name][conns]
                ref = out["runs"]["aws-lambda"][conns]
                ratios = [m["rps"] / b["rps"] for m, b in zip(mine, ref) if m["rps"] and b["rps"]]
                out["summary"][name][conns] = {
                    "rps": median([m["rps"] for m in mine]),
                    "lambda_rps": median([b["rps"] for b in ref]),
                    "ratio": median(ratios),
                    "ratios": ratios,
                    "p50_ms": median([m["p50_ms"] for m in mine]),
                    "non2xx": sum(m["non2xx"] for m in mine),
                    "socket_errors": sum(m["socket_errors"] for m in mine),
                }
    finally:
        server.stop()
        if server.stdout_path:
            console = console_summary(server.stdout_path)
            out["console"] = {k: console[k] for k in ("lines", "invocation_lines", "statuses", "suspicious")}
            out["stderr"] = Server.tail(server.stderr_path, 20)
            out["left_behind"] = server.left_behind
    return out


def report(results: dict[str, Any], configs: list[tuple[int, int]]) -> str:
    meta = results["meta"]
    lines = ["", f"faasemu up, HTTP per runtime · {meta['date']} · {meta['cpus']} CPUs · Python {meta['python']} · "
                 f"{meta['rounds']} interleaved rounds of wrk -d{meta['seconds']:g}s; medians",
             "x lambda = runtime req/s / aws-lambda req/s in the same round and the same `faasemu up`, median over rounds",
             "",
             f"  {'runtime':<11}{'python':<9}{'conns':>6}{'req/s':>9}{'aws-lambda':>12}{'x lambda':>10}{'p50 ms':>9}"
             f"{'non-2xx':>9}{'sock err':>9}"]
    anomalies = []
    for env, data in results["environments"].items():
        if "error" in data:
            lines.append(f"  {env}: not measured: {data['error']}")
            continue
        for name, reason in data.get("skipped", {}).items():
            lines.append(f"  {name:<11}{env:<9}  not measured: {reason}")
        for _, conns in configs:
            for name, s in data["summary"].items():
                if name == "aws-lambda":
                    continue
                s = s[conns]
                lines.append(f"  {name:<11}{env:<9}{conns:>6}{fmt(s['rps'], 0):>9}{fmt(s['lambda_rps'], 0):>12}"
                             f"{fmt(s['ratio'], 2, 'x'):>10}{fmt(s['p50_ms'], 3):>9}{s['non2xx']:>9}{s['socket_errors']:>9}")
                if s["non2xx"] or s["socket_errors"]:
                    anomalies.append(f"{name} c={conns}: {s['non2xx']} non-2xx, {s['socket_errors']} socket errors")
            ref = data["summary"]["aws-lambda"][conns]
            if ref["non2xx"] or ref["socket_errors"]:
                anomalies.append(f"aws-lambda ({env}) c={conns}: {ref['non2xx']} non-2xx, {ref['socket_errors']} socket errors")
        console = data.get("console") or {}
        bad = {k: v for k, v in console.get("statuses", {}).items() if k != "200"}
        if bad:
            anomalies.append(f"{env}: console logged non-200 statuses {bad}")
        if console.get("suspicious"):
            anomalies.append(f"{env}: console lines: " + " | ".join(console["suspicious"][:5]))
        if (data.get("stderr") or "").strip():
            anomalies.append(f"{env}: stderr: {data['stderr'].strip()[-600:]}")
        if data.get("left_behind"):
            anomalies.append(f"{env}: worker processes left running after shutdown: {data['left_behind']}")
    lines.append("")
    lines.append("  aws-lambda per interpreter (the reference of each ratio above): " + ", ".join(
        f"{env} {fmt(d['summary']['aws-lambda'][c]['rps'], 0)} req/s (c={c})"
        for env, d in results["environments"].items() if "summary" in d and "aws-lambda" in d["summary"]
        for _, c in configs))
    low = [(name, env, s[c]["ratio"]) for env, d in results["environments"].items() for name, s in d.get("summary", {}).items()
           for _, c in configs[-1:] if name != "aws-lambda" and s[c]["ratio"] is not None and s[c]["ratio"] < 0.8]
    lines.append("  below 0.8x of aws-lambda at 32 connections (target: none without a stated reason, see README): "
                 + (", ".join(f"{n} {r:.2f}x" for n, _, r in low) or "none"))
    if anomalies:
        lines += ["", "Looked wrong:"] + [f"  - {a}" for a in anomalies]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved wrk rounds (default 2)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each wrk run (default 4)")
    parser.add_argument("--c1", action="store_true", help="also measure at 1 connection (wrk -t1 -c1); doubles the time")
    for env, option, default, _, _ in ENVIRONMENTS[1:]:
        parser.add_argument(f"--{option.replace('_', '-')}", default=default,
                            help=f"a Python with the {env} SDK and faasemu importable (default {default})")
    parser.add_argument("--only", action="append", metavar="ENV",
                        help="measure only this environment: 'no SDK' is 'nosdk', else gcf, knative, azure (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure (and raw wrk output) as JSON")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s runs: a smoke run")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' console files and print where")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    if not os.path.exists(WRK):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    configs = [(1, 1), (2, 32)] if args.c1 else [(2, 32)]
    log_dir = tempfile.mkdtemp(prefix="faasemu-bench-runtimes-")
    began = time.perf_counter()
    results: dict[str, Any] = {"meta": {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "python": platform.python_version(), "platform": platform.platform(), "rounds": args.rounds,
        "seconds": args.seconds, "wrk": [f"-t{t} -c{c} -d{args.seconds:g}s --latency" for t, c in configs],
        "load_before": os.getloadavg()}, "environments": {}}
    try:
        for env, option, default, manifest, runtimes in ENVIRONMENTS:
            if args.only and (env.replace(" ", "").lower() if env == "no SDK" else env) not in \
                    {o.replace(" ", "").lower() for o in args.only}:
                continue
            python = default if option == "python" else getattr(args, option)
            print(f"[{time.perf_counter() - began:5.1f} s] {env}: {python} -m faasemu up -f {manifest}", flush=True)
            try:
                results["environments"][env] = measure_environment(
                    env, python, os.path.join(PROJECT, manifest), runtimes, log_dir, args.rounds, args.seconds, configs)
            except Exception as exc:  # a benchmark reports what it could not measure and goes on
                results["environments"][env] = {"error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
    except KeyboardInterrupt:
        results["meta"]["interrupted"] = True
    finally:
        results["meta"]["total_s"] = round(time.perf_counter() - began, 1)
        results["meta"]["load_after"] = os.getloadavg()
        if args.keep_logs:
            print(f"server console files kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    print(report(results, configs))
    print(f"\n(total {results['meta']['total_s']} s; load average before {results['meta']['load_before'][0]:.2f}, "
          f"after {results['meta']['load_after'][0]:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
