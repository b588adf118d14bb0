"""Workers forked by a fork server (faasemu/workers/forkserver.py) are what a fresh interpreter would
be: the same environment rules, working directory, sys.path, descriptors, signal dispositions and exit
statuses, their output relayed, killed with their whole session, and nothing left when the supervisor
goes, even by kill -9. Real worker processes and a real fork server; each test compares with the
subprocess path (FAASEMU_FORKSERVER=0) where the two must agree."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import write_project

from faasemu.project.environment import handler_base_env
from faasemu.project.manifest import load_manifest
from faasemu.workers import forkserver
from faasemu.workers.process import WorkerDied, WorkerProcess, _Forked

APP = """\
import os
import random
import signal
import subprocess
import sys


def handler(event, context):
    what = event.get("what")
    if what == "exit":
        sys.exit(3)
    if what == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "print":
        print("first line")
        print("second line", file=sys.stderr)
        sys.stdout.write("no newline at the end")
        sys.stdout.flush()
        sys.exit(0)
    if what == "child":
        return {"child": subprocess.Popen(["sleep", "60"]).pid}
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "path": sys.path,
        "main": getattr(sys.modules["__main__"], "__file__", None),
        "argv0": sys.argv[0],
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "signals": {name: repr(signal.getsignal(getattr(signal, name)))
                    for name in ("SIGTERM", "SIGCHLD", "SIGINT", "SIGPIPE", "SIGALRM")},
        "random": random.random(),
        "sid": os.getsid(0) == os.getpid(),
        "user_modules": sorted(name for name, module in sys.modules.items()
                               if (getattr(module, "__file__", None) or "").startswith(os.getcwd() + os.sep)),
    }
"""

T = TypeVar("T")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_project(tmp_path, {
        "faasemu.yaml": "functions:\n  f:\n    handler: app.py:handler\n",
        "app.py": APP,
        "helper.py": "VALUE = 1\n",
    })
    return tmp_path


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(main())  # type: ignore[arg-type]  # a coroutine function's result is a coroutine


async def loaded(root: Path, lines: list[str] | None = None, env: dict[str, str] | None = None,
                 spawn_env: dict[str, str] | None = None) -> WorkerProcess:
    spec = load_manifest(str(root / "faasemu.yaml")).function("f")
    assert spec is not None
    worker = await WorkerProcess.spawn(str(root), (lines if lines is not None else []).append, spawn_env)
    await worker.load(spec.to_wire(), str(root), env or {}, 10)
    return worker


async def call(worker: WorkerProcess, event: dict[str, Any]) -> dict[str, Any]:
    _, body = await worker.request({"op": "raw", "id": 1, "inv": {"request_id": "r", "deadline": time.time() + 10}},
                                   json.dumps(event).encode(), 10)
    result: dict[str, Any] = json.loads(body)
    return result


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan may wait for a PID 1 that never reaps it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """The pids still running after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.02)
    return {pid for pid in pids if running(pid)}


def describe(project: Path, monkeypatch: pytest.MonkeyPatch, forked: bool) -> dict[str, Any]:
    monkeypatch.setenv(forkserver.ENV_SWITCH, "1" if forked else "0")

    async def main() -> dict[str, Any]:
        worker = await loaded(project, env={"GIVEN": "yes"})
        try:
            assert isinstance(worker.transport, _Forked) == forked
            described = await call(worker, {})
            del described["env"][forkserver.ENV_SWITCH]  # the one variable the two runs differ by
            return described
        finally:
            await worker.terminate()

    return run(main)


def test_a_forked_worker_is_set_up_as_a_fresh_interpreter_is(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = describe(project, monkeypatch, forked=False)
    forked = describe(project, monkeypatch, forked=True)
    for field in ("env", "cwd", "path", "main", "argv0", "signals", "sid", "user_modules"):
        assert forked[field] == fresh[field], field
    assert forked["fds"][:-1] == fresh["fds"][:-1] == [0, 1, 2, 3]  # the last: the handler's own listdir
    assert forked["cwd"] == os.path.realpath(project)
    assert forked["path"][0] == os.path.realpath(project)  # as `python -m` makes it
    assert forked["user_modules"] == ["app"]  # helper.py is not imported: nothing before `load`
    assert forked["env"]["GIVEN"] == "yes"


def test_the_environment_is_exactly_the_one_given(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.ENV_SWITCH, "1")
    monkeypatch.delenv("SET_AFTER_START", raising=False)

    async def main() -> list[dict[str, Any]]:
        # the server starts with this worker's environment, which holds a variable the next one is not given
        first = await loaded(project, spawn_env={**handler_base_env(os.environ), "SERVER_ONLY": "x"})
        assert isinstance(first.transport, _Forked)
        os.environ["SET_AFTER_START"] = "leak"  # in the supervisor, after the server started: never given
        try:
            second = await loaded(project, env={"GIVEN": "yes"})
            try:
                assert isinstance(second.transport, _Forked)
                assert second.transport.child.server is first.transport.child.server
                return [await call(first, {}), await call(second, {})]
            finally:
                await second.terminate()
        finally:
            del os.environ["SET_AFTER_START"]
            await first.terminate()

    first, second = run(main)
    assert first["env"].get("SERVER_ONLY") == "x"
    assert "SERVER_ONLY" not in second["env"]
    assert "SET_AFTER_START" not in first["env"] and "SET_AFTER_START" not in second["env"]
    assert second["env"]["GIVEN"] == "yes"
    assert first["random"] != second["random"]  # reseeded at fork


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "subprocess"])
def test_exit_statuses_and_output_are_reported(project: Path, monkeypatch: pytest.MonkeyPatch, forked: bool) -> None:
    monkeypatch.setenv(forkserver.ENV_SWITCH, "1" if forked else "0")

    async def main() -> tuple[list[str], list[str]]:
        descriptions = []
        lines: list[str] = []
        for what in ("exit", "kill", "print"):
            worker = await loaded(project, lines)
            with pytest.raises(WorkerDied):
                await call(worker, {"what": what})
            await worker.wait_exited()
            descriptions.append(worker.exit_description)
            await worker.terminate()
        return descriptions, lines

    descriptions, lines = run(main)
    assert descriptions == ["worker exited with status 3", "worker killed by signal SIGKILL",
                            "worker exited with status 0"]
    assert lines == ["first line", "second line", "no newline at the end"]


def test_kill_ends_the_whole_session(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.ENV_SWITCH, "1")

    async def main() -> int:
        worker = await loaded(project)
        try:
            assert isinstance(worker.transport, _Forked)
            child: int = (await call(worker, {"what": "child"}))["child"]
            assert running(child)
            worker.kill()
            await worker.wait_exited()
            assert worker.exit_description == "worker killed by signal SIGKILL"
            return child
        finally:
            await worker.terminate()

    assert gone({run(main)}) == set()


def test_nothing_outlives_the_event_loop(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker never terminated: the server (and it) still end when asyncio.run closes its loop."""
    monkeypatch.setenv(forkserver.ENV_SWITCH, "1")

    async def main() -> set[int]:
        worker = await loaded(project)
        return {worker.pid, *forkserver.running_servers()}

    pids = run(main)
    assert len(pids) == 2
    assert gone(pids, timeout=0.0) == set()  # already reaped, not merely dying


def test_a_dead_fork_server_is_replaced(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.ENV_SWITCH, "1")

    async def main() -> tuple[int, int, str]:
        worker = await loaded(project)
        [first] = forkserver.running_servers()
        os.kill(first, signal.SIGKILL)
        await worker.wait_exited(timeout=10)
        died = worker.exit_description
        await worker.terminate()
        again = await loaded(project)
        try:
            assert isinstance(again.transport, _Forked)
            assert (await call(again, {}))["ppid"] == again.transport.child.server.pid
            [second] = forkserver.running_servers()
            return first, second, died
        finally:
            await again.terminate()

    first, second, died = run(main)
    assert first != second
    assert died == "worker killed by signal SIGKILL"


def test_a_cancelled_spawn_leaves_no_process(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.ENV_SWITCH, "1")

    async def main() -> set[int]:
        keep = await loaded(project)  # the server is running
        [server] = forkserver.running_servers()
        before = set(children_of(server))
        spawns = [asyncio.ensure_future(WorkerProcess.spawn(str(project), print)) for _ in range(3)]
        await asyncio.sleep(0)
        for spawn in spawns:
            spawn.cancel()
        await asyncio.gather(*spawns, return_exceptions=True)
        await asyncio.sleep(0.2)
        left = set(children_of(server)) - before
        await keep.terminate()
        return left

    left = run(main)
    assert gone(left) == set()


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_fallback_with_the_switch_off(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.ENV_SWITCH, "0")

    async def main() -> tuple[bool, list[int]]:
        worker = await loaded(project)
        try:
            return isinstance(worker.transport, _Forked), forkserver.running_servers()
        finally:
            await worker.terminate()

    assert run(main) == (False, [])


SUPERVISOR = """\
import asyncio, json, sys, time
sys.path.insert(0, {tests!r})
from faasemu.workers import forkserver
from test_forkserver import loaded, call
from pathlib import Path

async def main():
    workers = [await loaded(Path({root!r})) for _ in range(2)]
    pids = [w.pid for w in workers] + forkserver.running_servers()
    child = (await call(workers[0], {{"what": "child"}}))["child"]
    print(json.dumps(pids + [child]), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_supervisor_killed_by_sigkill_leaves_no_worker_or_fork_server(project: Path) -> None:
    script = SUPERVISOR.format(tests=str(Path(__file__).parent), root=str(project))
    env = {**os.environ, forkserver.ENV_SWITCH: "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    supervisor = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, env=env)
    try:
        assert supervisor.stdout is not None
        pids = set(json.loads(supervisor.stdout.readline()))
        assert len(pids) == 4 and all(running(pid) for pid in pids)
        supervisor.kill()
        supervisor.wait(10)
        assert gone(pids) == set()
    finally:
        supervisor.kill()
        supervisor.wait(10)
        if supervisor.stdout is not None:
            supervisor.stdout.close()


def test_a_missing_root_is_an_os_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.ENV_SWITCH, "1")

    async def main() -> None:
        with pytest.raises(OSError, match="no such directory"):
            await WorkerProcess.spawn(str(tmp_path / "missing"), print)

    run(main)
