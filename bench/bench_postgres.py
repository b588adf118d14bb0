#!/usr/bin/env python3
"""Performance figures of PostgreSQL state (issue 11), each against a baseline measured in the same run.

    python bench/bench_postgres.py [--runs N] [--json FILE]

A benchmark, not a test: it prints figures and never fails on one (bench/README.md has the targets).
It copies the 3factor sample (sample_functions/threefactor: the same handlers run on SQLite and on
PostgreSQL through psycopg) into a temporary folder reachable by the server's account, and measures:

1. a campaign, `faasemu chaos changes.jsonl --runs N --seed 1`, on PostgreSQL against the same campaign
   on SQLite: wall time and runs, ratio (target: PostgreSQL within 3x);
2. one run's reset: `DROP DATABASE` + `CREATE DATABASE ... TEMPLATE` on the private server (what each
   lane does for its next run, in a thread while the current one executes) against SQLite's file copy;
3. `faasemu up` to its first 200 with `postgres: auto`: on a fresh `.faasemu/` (a cluster copied from the
   pristine one in the user's cache, made once per machine by initdb, which this step makes first) and on
   an existing one, against the same `up` with SQLite state (targets: within 2 s fresh, 1 s existing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_functions", "threefactor")
SUMMARY = re.compile(r"(\d+)\s+runs,\s+(\d+)\s+deliveries\s+in\s+([\d.]+)\s+s")
HELLO = "def hello(event, context):\n    return {'statusCode': 200, 'body': 'hi'}\n"


def reachable_folder() -> str:
    """A temporary folder the server's account can traverse (faasemu runs PostgreSQL unprivileged under root)."""
    folder = tempfile.mkdtemp(prefix="faasemu-bench-pg-")
    os.chmod(folder, 0o711)
    return folder


def campaign(folder: str, manifest: str, runs: int) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "faasemu", "chaos", "-f", manifest, "changes.jsonl", "--runs",
                           str(runs), "--seed", "1"], cwd=folder, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    found = SUMMARY.search(done.stdout)
    if done.returncode not in (0, 1) or not found:
        raise SystemExit(f"chaos -f {manifest} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return {"wall_s": wall, "runs": int(found.group(1)), "deliveries": int(found.group(2)),
            "campaign_s": float(found.group(3))}


def reset_costs(folder: str, rounds: int = 20) -> dict[str, float]:
    sys.path.insert(0, ROOT)
    from faasemu.project import postgres, postgres_sql

    sqlite_template = os.path.join(folder, "template.db")
    import sqlite3

    connection = sqlite3.connect(sqlite_template)
    with open(os.path.join(SAMPLE, "schema.sql")) as schema:
        connection.executescript(schema.read())
    connection.close()
    started = time.perf_counter()
    for _ in range(rounds):
        shutil.copyfile(sqlite_template, os.path.join(folder, "lane.db"))
    sqlite_ms = (time.perf_counter() - started) / rounds * 1000
    with postgres.private_server(os.path.join(folder, "reset", ".faasemu", "postgres")) as server:
        postgres_sql.ensure_database(server, "bench_t", os.path.join(SAMPLE, "schema.sql"))
        with postgres_sql.connect(server.admin_url, autocommit=True) as admin:
            started = time.perf_counter()
            for _ in range(rounds):
                admin.execute('DROP DATABASE IF EXISTS "bench_lane" WITH (FORCE)')
                admin.execute('CREATE DATABASE "bench_lane" TEMPLATE "bench_t"')
            pg_ms = (time.perf_counter() - started) / rounds * 1000
    return {"sqlite_copy_ms": sqlite_ms, "postgres_clone_ms": pg_ms}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def up_to_first_200(project: str) -> float:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "faasemu", "up", "--port", str(port)], cwd=project,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"faasemu up in {project} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def up_project(folder: str, name: str, state: str) -> str:
    project = os.path.join(folder, name)
    os.makedirs(project)
    os.chmod(project, 0o711)
    with open(os.path.join(project, "hello.py"), "w") as file:
        file.write(HELLO)
    with open(os.path.join(project, "schema.sql"), "w") as file:
        file.write("CREATE TABLE t (id text PRIMARY KEY);\n")
    with open(os.path.join(project, "faasemu.yaml"), "w") as file:
        file.write(f"state: {{{state}, schema: schema.sql}}\n"
                   "functions:\n  hello: {handler: hello.py:hello, http: {path: /hello}}\n")
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    folder = reachable_folder()
    figures: dict[str, object] = {"load": os.getloadavg()[0], "cpus": os.cpu_count()}
    try:
        for name in ("faasemu.yaml", "faasemu.postgres.yaml", "schema.sql", "shop.py", "changes.jsonl"):
            shutil.copy(os.path.join(SAMPLE, name), folder)
        sqlite = campaign(folder, "faasemu.yaml", args.runs)
        pg = campaign(folder, "faasemu.postgres.yaml", args.runs)
        figures["campaign"] = {"sqlite": sqlite, "postgres": pg, "ratio": pg["campaign_s"] / sqlite["campaign_s"]}
        print(f"1. campaign (3factor sample, --runs {args.runs}): SQLite {sqlite['runs']} runs in "
              f"{sqlite['campaign_s']:.1f} s, PostgreSQL {pg['runs']} runs in {pg['campaign_s']:.1f} s: "
              f"PostgreSQL {pg['campaign_s'] / sqlite['campaign_s']:.2f}x the time of SQLite (target <= 3x)")
        resets = reset_costs(folder)
        figures["reset"] = resets
        print(f"2. one run's reset: SQLite file copy {resets['sqlite_copy_ms']:.2f} ms, PostgreSQL DROP + CREATE "
              f"... TEMPLATE {resets['postgres_clone_ms']:.1f} ms (made ahead, in a thread, during the run before)")
        base = up_project(folder, "up-sqlite", "sqlite: .faasemu/state.db")
        up_to_first_200(base)  # imports warm in the page cache
        sqlite_up = up_to_first_200(base)
        pg_project = up_project(folder, "up-postgres", "postgres: auto")
        warm = up_project(folder, "up-postgres-warm", "postgres: auto")
        up_to_first_200(warm)  # the pristine cluster in the cache: made once per machine
        fresh = up_to_first_200(pg_project)
        existing = up_to_first_200(pg_project)
        figures["up"] = {"sqlite_s": sqlite_up, "postgres_fresh_s": fresh, "postgres_existing_s": existing}
        print(f"3. up to the first 200: SQLite {sqlite_up:.2f} s; postgres: auto on a fresh .faasemu/ {fresh:.2f} s "
              f"({fresh / sqlite_up:.1f}x, target <= 2 s), on an existing one {existing:.2f} s "
              f"({existing / sqlite_up:.1f}x, target <= 1 s)")
        print(f"machine: {os.cpu_count()} cores, load average {figures['load']:.2f} at the start")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(figures, file, indent=2)


if __name__ == "__main__":
    main()
