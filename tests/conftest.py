"""Shared fixtures: projects written to tmp_path, and real `faasemu up` processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text, dedented) under root; returns the manifest path."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "faasemu.yaml"


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
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `faasemu ARGS` as a user would, capturing stdout and stderr as text."""
    return subprocess.run(
        [sys.executable, "-m", "faasemu", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
