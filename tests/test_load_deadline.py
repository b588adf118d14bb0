"""A module that hangs while it is imported (`time.sleep(120)` at module level), with a real `up`.

A load has a deadline; past it the worker is killed and the function answers 503 naming the module
that did not finish importing. A save starts a fresh worker at once, and no worker, however stuck,
outlives `up` (Ctrl+C or SIGTERM).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from conftest import Server, write_project

HUNG = """\
    import time

    time.sleep(120)
    VALUE = "slow"
"""

FIXED = 'VALUE = "fixed"\n'


def project(tmp_path: Path, timeout: int) -> Path:
    return write_project(tmp_path, {
        "faasemu.yaml": f"""\
            name: hangs
            functions:
              slow:
                handler: handler.py:handler
                timeout: {timeout}
                http: {{path: /slow, methods: [GET]}}
        """,
        "handler.py": """\
            import slowdep


            def handler(event, context):
                return {"statusCode": 200, "body": slowdep.VALUE}
        """,
        "slowdep.py": HUNG,
    })


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan may wait for a PID 1 that never reaps it)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def workers_of(server: Server) -> set[int]:
    """The live worker processes `up` started: its children running faasemu.workers.entry, and the
    children of its fork server (faasemu/workers/forkserver.py), which forks most of them."""
    assert server.process is not None
    processes: list[tuple[int, int, bytes]] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                processes.append((int(name), parent, cmdline.read()))
        except (OSError, ValueError, IndexError):
            continue
    servers = {pid for pid, parent, command in processes
               if parent == server.process.pid and b"faasemu.workers.forkserver" in command}
    return {pid for pid, parent, command in processes
            if running(pid) and (parent in servers or (parent == server.process.pid
                                                       and b"faasemu.workers.entry" in command))}


def wait_for_workers(server: Server, timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = workers_of(server)
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no worker started:\n{server.output()}")


def wait_until_gone(pids: set[int], timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.05)
    return {pid for pid in pids if running(pid)}


def test_a_hung_import_answers_503_naming_the_module_and_a_save_recovers(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path, timeout=1))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.get("/slow")
        assert first.status_code == 504  # the request waited its own timeout for the worker
        hung = wait_for_workers(server)
        deadline = time.monotonic() + 60
        while (response := client.get("/slow")).status_code == 504 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert response.status_code == 503, response.text
        message = response.json()["errorMessage"]
        assert response.json()["errorType"] == "InitTimeout"
        assert "slowdep.py did not finish importing within 10 s" in message
        assert "time.sleep(120)" in message
        assert "(slowdep.py:3)" in message  # the line it was stuck at
        assert wait_until_gone(hung) == set()
        out = server.wait_for_output("cannot load the handler")
        assert "slowdep.py did not finish importing" in out

        (tmp_path / "slowdep.py").write_text(FIXED)
        deadline = time.monotonic() + 30
        while (response := client.get("/slow")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert response.status_code == 200, response.text
        assert response.text == "fixed"


def test_a_save_while_the_import_hangs_starts_a_fresh_worker_at_once(tmp_path: Path, run_server) -> None:
    # A 60 s timeout gives a 60 s load deadline: the fresh worker must not wait for the stuck one.
    server = run_server(project(tmp_path, timeout=60), "--warm")
    hung = wait_for_workers(server)
    (tmp_path / "slowdep.py").write_text(FIXED)
    server.wait_for_output("reload  slowdep.py changed -> slow")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get("/slow")
    assert response.status_code == 200, response.text
    assert response.text == "fixed"
    assert wait_until_gone(hung) == set()
    status = httpx.get(f"{server.url}/_faasemu/functions", timeout=10).json()["functions"][0]
    assert status["workers"]["starting"] == 0 and status["error"] is None


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_no_worker_stuck_in_its_import_outlives_up(tmp_path: Path, stop: signal.Signals) -> None:
    server = Server(project(tmp_path, timeout=60), "--warm").start()
    try:
        hung = wait_for_workers(server)
        assert server.process is not None
        server.process.send_signal(stop)
        server.process.wait(timeout=30)
    finally:
        server.stop()
    assert wait_until_gone(hung) == set(), f"workers outlived `up`:\n{server.output()}"
