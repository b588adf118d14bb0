"""`faasemu chaos` locally and with --cluster on a local Ray cluster: wall time and the ratio.

    python bench/bench_cluster.py [--runs N] [--seed S]

Runs the cascade scenario (tests/scenarios/cascade) in a temporary copy: once locally, once with
`--cluster ray://127.0.0.1:PORT` against a head this script starts (`ray start --head --block`, 2
CPUs, its own session, ended by pid at the end). Checks that both JSON reports are byte-identical and
prints the wall times and local/cluster. A benchmark, not a test: it never fails on a figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIO = Path(__file__).resolve().parents[1] / "tests" / "scenarios" / "cascade"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session_pids(sid: int) -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[3]) == sid:
                found.append(int(name))
        except OSError:
            pass
    return found


def chaos(root: Path, name: str, args: argparse.Namespace, env: dict[str, str], *extra: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "faasemu", "chaos", "events.jsonl", "--seed", str(args.seed),
                           "--runs", str(args.runs), "--json", f"{name}.json", *extra], cwd=root, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"{name}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fb-", dir="/tmp"))
    root = work / "project"
    shutil.copytree(SCENARIO, root, ignore=shutil.ignore_patterns("__pycache__", ".faasemu"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    client = free_port()
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                             f"--port={free_port()}", f"--ray-client-server-port={client}", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={work / 'ray'}", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", client), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        local = chaos(root, "local", args, env)
        cluster = chaos(root, "cluster", args, env, "--cluster", f"ray://127.0.0.1:{client}")
        same = (root / "local.json").read_bytes() == (root / "cluster.json").read_bytes()
        print(f"local {local:.1f} s · cluster (2 actors, Ray Client) {cluster:.1f} s · "
              f"speed-up {local / cluster:.2f}x · JSON reports {'identical' if same else 'DIFFER'}")
    finally:
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for pid in session_pids(head.pid):
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        head.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
