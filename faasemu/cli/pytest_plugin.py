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


# -- chaos: verdicts as test items ------------------------------------------------------------

PROPERTIES = ("idempotent", "order_tolerant")


class ChaosReport:
    """A finished `faasemu chaos` campaign: its JSON report (docs/verification.md#reports) and output."""

    def __init__(self, report: dict[str, Any], output: str, exit_code: int) -> None:
        self.report = report
        self.output = output
        self.exit_code = exit_code
        self.functions: dict[str, Any] = report.get("functions", {})

    def failure(self, function: str, prop: str) -> str | None:
        """Why `function` is not `prop` (the counterexample and how to reproduce it), or None when it is."""
        entry = self.functions.get(function)
        if entry is None:
            return f"{function}: no such function in the campaign's report (functions: {', '.join(self.functions)})"
        if entry.get("load_error"):
            error = entry["load_error"]
            return f"{function} did not load: {error.get('type')}: {error.get('message')} ({error.get('where')})"
        if entry.get(prop) is not False:
            return None
        kinds = {"order"} if prop == "order_tolerant" else None
        found = next((v for v in entry["violations"] if (v["kind"] in kinds if kinds else v["kind"] != "order")), None)
        if found is None:
            return f"{function} is not {prop.replace('_', '-')}"
        lines = [f"{function} is not {prop.replace('_', '-')} ({found['kind']}): {found.get('hint', '')}",
                 "schedule:", *(f"  {json.dumps(step)}" for step in found["schedule"]),
                 "diff:", json.dumps(found["diff"], indent=2),
                 f"reproduce: {found['reproduce']}"]
        return "\n".join(lines)

    def assert_ok(self, function: str) -> None:
        problems = [why for prop in PROPERTIES if (why := self.failure(function, prop))]
        if problems:
            raise AssertionError("\n\n".join(problems))


def run_campaign(manifest: str, events: str | None = None, *, runs: int = 100, seed: int | None = None,
                 only: tuple[str, ...] = ()) -> ChaosReport:
    """Run `faasemu chaos` as a user would (a subprocess), and read its JSON report."""
    manifest = os.path.abspath(manifest)  # the campaign runs in the manifest's folder
    events = os.path.abspath(events) if events else None
    with tempfile.TemporaryDirectory(prefix="faasemu-chaos-") as folder:
        report_path = os.path.join(folder, "report.json")
        command = [sys.executable, "-m", "faasemu", "chaos", *([events] if events else []), "-f", manifest,
                   "--runs", str(runs), "--json", report_path, *(["--seed", str(seed)] if seed is not None else [])]
        for name in only:
            command += ["--only", name]
        done = subprocess.run(command, cwd=os.path.dirname(os.path.abspath(manifest)), capture_output=True,
                              text=True, env={**os.environ, "COLUMNS": "160"})
        output = done.stdout + done.stderr
        if done.returncode not in (0, 1) or not os.path.exists(report_path):
            raise FaasemuError(f"faasemu chaos exited {done.returncode}:\n{output}")
        with open(report_path, encoding="utf-8") as file:
            return ChaosReport(json.load(file), output, done.returncode)


class ChaosItem(pytest.Item):
    """One function and property of the campaign `--faasemu-chaos` runs (once, for all its items)."""

    def __init__(self, *, function: str, prop: str, campaign: ChaosReport, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.function = function
        self.prop = prop
        self.campaign = campaign

    def runtest(self) -> None:
        if not self.function:
            raise FaasemuError(self.campaign.output)
        why = self.campaign.failure(self.function, self.prop)
        entry = self.campaign.functions.get(self.function, {})
        if why is None and entry.get(self.prop) is None and not entry.get("load_error"):
            pytest.skip("nondeterministic outcome" if entry.get("nondeterministic_outcome") else "not exercised")
        if why is not None:
            raise FaasemuError(why)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, FaasemuError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"faasemu chaos: {self.function} {self.prop.replace('_', '-')}"


def _manifest(config: pytest.Config) -> str:
    return str(config.getoption("--faasemu-manifest") or os.path.join(str(config.invocation_params.dir),
                                                                     "faasemu.yaml"))


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--faasemu-chaos [EVENTS]`: one campaign, its verdicts added as items (function x property)."""
    events = config.getoption("--faasemu-chaos")
    if events is None:
        return
    try:
        campaign = run_campaign(_manifest(config), events or None, runs=config.getoption("--faasemu-chaos-runs"),
                                seed=config.getoption("--faasemu-seed"))
    except FaasemuError as exc:  # unusable input, a broken project: one failing item saying why
        broken = ChaosReport({}, str(exc), 2)
        items.append(ChaosItem.from_parent(session, name="faasemu-chaos", function="", prop="", campaign=broken))
        return
    for function in campaign.functions:
        for prop in PROPERTIES:
            items.append(ChaosItem.from_parent(session, name=f"faasemu-chaos[{function}-{prop}]",
                                               function=function, prop=prop, campaign=campaign))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faasemu")
    group.addoption("--faasemu-manifest", default=None, metavar="FILE",
                    help="the project the faasemu_up fixture serves (default: faasemu.yaml here)")
    group.addoption("--faasemu-chaos", nargs="?", const="", default=None, metavar="EVENTS",
                    help="run a faasemu chaos campaign on EVENTS (default: the events `faasemu up` recorded) "
                         "and add one test per function and property")
    group.addoption("--faasemu-chaos-runs", type=int, default=100, metavar="N",
                    help="random schedules of --faasemu-chaos after the probes (default 100)")
    group.addoption("--faasemu-seed", type=int, default=None, metavar="S", help="the seed of --faasemu-chaos")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faasemu_reset: start this test on an empty event log and fresh state")


@pytest.fixture(scope="session")
def _faasemu_session(request: pytest.FixtureRequest) -> Iterator[FaasemuUp]:
    server = FaasemuUp(_manifest(request.config)).start()
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


@pytest.fixture
def faasemu_chaos(pytestconfig: pytest.Config) -> Any:
    """`faasemu_chaos(events=None, runs=100, seed=None, only=())` runs a campaign on the project and
    returns its ChaosReport: `.assert_ok(fn)` fails with the counterexample and the reproduce command."""

    def run(events: str | None = None, *, runs: int = 100, seed: int | None = None,
            only: tuple[str, ...] = ()) -> ChaosReport:
        return run_campaign(_manifest(pytestconfig), events, runs=runs, seed=seed, only=only)

    return run
