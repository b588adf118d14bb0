"""The pytest plugin (entry point `pytest11`): a real `faasemu up` for the project under test.

Installed with faasemu, loaded by pytest on its own, the way chalice ships its test client and
pytest-postgresql its fixtures. `faasemu_up` is session-scoped: one `faasemu up` on a free loopback
port for the whole run, started from the manifest `--faasemu-manifest` (default `faasemu.yaml` in the
directory pytest runs from, or a SAM template / serverless.yml there), stopped at the end. A test
marked `@pytest.mark.faasemu_reset` starts from an empty event log and fresh state: the server is
restarted on a fresh `.faasemu/` (never the user's own state file outside it).

Standard library only here: this module is imported by every pytest run in an environment that has
faasemu installed, and must cost nothing when its fixtures are not used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

START_TIMEOUT = 60.0
SETTLED = ("done", "dead")  # delivery statuses that need nothing more from the bus


class FaasemuError(AssertionError):
    """A request to the running `faasemu up` failed, or it did not start: the message says why."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FaasemuUp:
    """A running `faasemu up`: its `url`, and helpers for what tests of event handlers ask."""

    def __init__(self, manifest: str) -> None:
        self.manifest = os.path.abspath(manifest)
        self.root = os.path.dirname(self.manifest)
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="faasemu-up-", suffix=".log", delete=False)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FaasemuUp:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "faasemu", "up", "-f", self.manifest, "--port", str(self.port),
                   "--no-reload", "--quiet"]
        self.process = subprocess.Popen(command, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FaasemuError(f"faasemu up exited with {self.process.returncode}:\n{self.output()}")
            try:
                self._request("GET", "/_faasemu/health")
                return self
            except (FaasemuError, OSError):
                time.sleep(0.05)
        self.stop()
        raise FaasemuError(f"faasemu up did not answer within {START_TIMEOUT:.0f} s:\n{self.output()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def reset(self) -> None:
        """Restart on an empty `.faasemu/` (event log, sink, state kept there): a test's clean slate."""
        self.stop()
        shutil.rmtree(os.path.join(self.root, ".faasemu"), ignore_errors=True)
        self.start()

    def output(self) -> str:
        """Everything `faasemu up` printed so far (its console, the handlers' output)."""
        self._log.flush()
        with open(self._log.name, encoding="utf-8", errors="replace") as file:
            return file.read()

    # -- requests ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, payload: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data, {"content-type": "application/json"}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except urllib.error.URLError as exc:
            raise FaasemuError(f"{method} {path}: {exc.reason}") from None
        try:
            value: Any = json.loads(body) if body else None
        except ValueError:
            value = body.decode("utf-8", errors="replace")
        if status >= 400 and not path.startswith("/2015-03-31/"):
            raise FaasemuError(f"{method} {path} answered {status}: {value}")
        return status, value

    def post_event(self, type: str, data: Any = None, **fields: Any) -> dict[str, Any]:
        """Publish one event (a CloudEvent's `type`, `data`, and any other attribute: `id`, `source`
        ...) through the ingress, as an app's producer would; returns the ingress's answer."""
        _status, answer = self._request("POST", "/_faasemu/events", {"type": type, "data": data, **fields})
        return dict(answer)

    def invoke(self, function: str, payload: Any = None) -> Any:
        """Invoke an aws-lambda function synchronously through the Lambda API (as boto3's `invoke`);
        returns what the handler returned, or raises FaasemuError with the function's error."""
        status, value = self._request("POST", f"/2015-03-31/functions/{function}/invocations", payload)
        if status >= 400 or (isinstance(value, dict) and "errorMessage" in value and "errorType" in value):
            raise FaasemuError(f"{function} failed ({status}): {value}")
        return value

    def sink_calls(self) -> list[dict[str, Any]]:
        """The calls handlers made to the effect sink ($FAASEMU_SINK_URL/<name>), oldest first."""
        return list(self._request("GET", "/_faasemu/sink")[1]["calls"])

    def events(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The event log, newest first, each event with its deliveries (status, attempts, tags)."""
        return list(self._request("GET", f"/_faasemu/events?limit={limit}")[1]["events"])

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every delivery of every event is done or dead-lettered (retries included)."""
        deadline = time.monotonic() + timeout
        while True:
            pending = [(event["id"], d["function"], d["status"]) for event in self.events()
                       for d in event["deliveries"] if d["status"] not in SETTLED]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise FaasemuError(f"deliveries still pending after {timeout:.0f} s: {pending[:10]}")
            time.sleep(0.05)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faasemu")
    group.addoption("--faasemu-manifest", default=None, metavar="FILE",
                    help="the project the faasemu_up fixture serves (default: faasemu.yaml here)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faasemu_reset: start this test on an empty event log and fresh state")


@pytest.fixture(scope="session")
def _faasemu_session(request: pytest.FixtureRequest) -> Iterator[FaasemuUp]:
    manifest = request.config.getoption("--faasemu-manifest") or os.path.join(str(request.config.invocation_params.dir),
                                                                               "faasemu.yaml")
    server = FaasemuUp(manifest).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def faasemu_up(_faasemu_session: FaasemuUp, request: pytest.FixtureRequest) -> FaasemuUp:
    """A running `faasemu up` for the project (one per session; see the module's docstring)."""
    if request.node.get_closest_marker("faasemu_reset") is not None:
        _faasemu_session.reset()
    return _faasemu_session
