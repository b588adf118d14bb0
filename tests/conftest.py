"""Shared fixtures: projects written to tmp_path, and real `faasemu up` processes on free ports."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from faasemu.workers.process import WorkerProcess

REPO = Path(__file__).resolve().parent.parent
# pytest-xdist's workers (the README's `pytest` runs in parallel) inherit COLUMNS=80 and LINES=24 from
# its pseudo terminal: faasemu's console then wraps at 80 columns instead of using its 200 off a terminal
# (faasemu/project/console.py), which the tests' expected lines assume, in this process and in the
# CLI processes it starts with its environment.
for _variable in ("COLUMNS", "LINES"):
    os.environ.pop(_variable, None)


# Ports for the servers tests start. `bind(0)` then close can hand the same port to two servers started
# one after the other (the first has not bound it yet), and to another pytest-xdist worker: so each worker
# hands out ports of its own block, once each, checked free, below Linux's ephemeral range (32768-60999,
# where bind(0) and outgoing connections take theirs), above Ray's worker ports (10002-19999) and around
# the ports its Client proxy gives each job's server (23000-23999: one handed to a test's server between
# the proxy's check and its bind failed the cluster test in CI). Each run starts at a random place in its
# block, so that two runs at once (two checkouts) seldom meet.
PORT_BLOCKS, PORT_BLOCK = (20000, 24000, 26000, 28000), 2000
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_block = PORT_BLOCKS[int(_worker) % len(PORT_BLOCKS) if _worker.isdigit() else 0]
_start = random.randrange(PORT_BLOCK)
_ports = iter([_block + (_start + step) % PORT_BLOCK for step in range(PORT_BLOCK)])


def free_port() -> int:
    """A loopback port no other server of this test run was given, free now."""
    for port in _ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port left in this worker's block of {PORT_BLOCK}")


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text, dedented) under root; returns the manifest path."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "faasemu.yaml"


@contextlib.asynccontextmanager
async def loaded_worker(root: Path, function: str) -> AsyncIterator[WorkerProcess]:
    """A real worker with the manifest's `function` loaded, as the campaign runner's `_load` does it."""
    from faasemu.project.environment import handler_environment  # imported here, as by the helpers below
    from faasemu.project.manifest import load_manifest
    from faasemu.runtimes.contract import load_runtime
    from faasemu.workers.process import WorkerProcess

    spec = load_manifest(root / "faasemu.yaml").function(function)
    assert spec is not None
    worker = await WorkerProcess.spawn(str(root), lambda line: None)
    try:
        env = handler_environment(load_runtime(spec.runtime).environment(spec, str(root)), spec.env, {})
        await worker.load(spec.to_wire(), str(root), env, 10.0)
        yield worker
    finally:
        await worker.terminate()


def arrivals(root: Path) -> list[str]:
    path = root / "arrivals.txt"
    return path.read_text().split() if path.exists() else []


def wait_for(condition, timeout: float = 60.0) -> bool:
    """Poll `condition` until it holds or `timeout` passes: generous, since the machine may be busy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Server:
    """A `faasemu up` process. Output goes to a file so tests can assert on what a user saw."""

    def __init__(self, manifest: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.manifest = manifest
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = manifest.parent / f"faasemu-up-{self.port}.log"
        self.args = args
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> Server:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "faasemu", "up", "-f", str(self.manifest), "--port", str(self.port), *self.args],
            cwd=self.manifest.parent, stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"faasemu up exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/_faasemu/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"faasemu up did not answer within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared in the output:\n{self.output()}")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def run_server() -> Iterator:
    """`run_server(manifest, *args)` starts a server that is always stopped after the test."""
    servers: list[Server] = []

    def start(manifest: Path, *args: str, env: dict[str, str] | None = None) -> Server:
        server = Server(manifest, *args, env=env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def run_cli(*args: str, cwd: Path | None = None, input: bytes | None = None,
            timeout: float = 180, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `faasemu ARGS` as a user would, capturing stdout and stderr as text (`env`: instead of os.environ)."""
    return subprocess.run(
        [sys.executable, "-m", "faasemu", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**(os.environ if env is None else env), "COLUMNS": "200"},
    )


# -- PostgreSQL: the private server of `state: {postgres: auto}` (faasemu/project/postgres.py) -------------------


@pytest.fixture(scope="session")
def postgres_binaries():
    """PostgreSQL's programs (`PgBinaries`), or a skip that says why; a failure when $CI is set, since CI
    installs PostgreSQL (.ci/run) and a PostgreSQL test skipped there would pass without having run."""
    from faasemu.project.errors import PostgresMissing
    from faasemu.project.postgres_binaries import find_binaries

    try:
        return find_binaries()
    except PostgresMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not installed, and CI must run the PostgreSQL tests: {exc}")
        pytest.skip(f"PostgreSQL is not installed: {exc}")


@pytest.fixture(scope="session")
def postgres_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An XDG_CACHE_HOME for the session: the pristine cluster is made once (an initdb, ~1 s), and every fresh
    cluster after it is a copy (~0.1 s). `private_server(..., cache_dir=str(postgres_cache / "faasemu"))`
    in-process; `postgres_env` for a `faasemu` subprocess."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture
def postgres_env(postgres_cache: Path) -> dict[str, str]:
    """The environment for a `faasemu up`/`invoke`/`replay`/`chaos` subprocess on a `postgres: auto` project:
    `run_server(manifest, env=postgres_env)`, `subprocess.run(..., env=postgres_env)`."""
    return {**os.environ, "XDG_CACHE_HOME": str(postgres_cache)}


@pytest.fixture
def postgres_project(tmp_path: Path, postgres_binaries) -> Iterator[Path]:
    """`tmp_path`, made reachable by the server's account: run by root (as CI is), faasemu runs PostgreSQL as
    `postgres` or `nobody`, which must pass through every folder above `.faasemu/` (faasemu refuses, saying so,
    when it cannot). pytest makes its temporary folders 0700; this adds o+x (traverse, not list) to them.
    After the test, any server still running on a cluster below `tmp_path` is stopped (a failed test's)."""
    from faasemu.project.postgres import PrivateCluster

    if os.geteuid() == 0:
        # up to the system's temporary folder: pytest's own folders above the test's are 0700 too, and
        # there are more of them under pytest-xdist (/tmp/pytest-of-root/pytest-N/popen-gwK/...)
        top = Path(tempfile.gettempdir()).resolve()
        folder = tmp_path.resolve()
        while folder != top and folder.parent != folder:
            mode = folder.stat().st_mode
            if not mode & 0o001:
                folder.chmod((mode & 0o7777) | 0o001)
            folder = folder.parent
    yield tmp_path
    for pidfile in tmp_path.rglob("postmaster.pid"):
        PrivateCluster(str(pidfile.parent.parent), postgres_binaries).stop()


@pytest.fixture
def postgres_server(postgres_binaries, postgres_project: Path, postgres_cache: Path) -> Iterator:
    """A fresh private PostgreSQL server for one test (`PgServer`: `.url(database)`, `.admin_url`, `.socket_dir`),
    its cluster in `tmp_path/.faasemu/postgres/`, exactly where `faasemu up`/`invoke`/`chaos` of a project
    written in `tmp_path` look: they find this server and share it (their leases beside this fixture's).
    The database is yours to make: `ensure_database(postgres_server, "app", schema)` (faasemu's name for
    the project's database is `postgres.DATABASE`). About 0.3 s (a copy of the session's pristine cluster and
    a start); stopped after the test even if a process of the test still holds a lease (`postgres_project`)."""
    from faasemu.project.postgres import private_server

    folder = str(postgres_project / ".faasemu" / "postgres")
    cache_dir = str(postgres_cache / "faasemu")
    with private_server(folder, postgres_binaries, cache_dir=cache_dir) as server:
        yield server
