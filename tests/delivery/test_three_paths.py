"""The three delivery paths (`up`'s bus, `replay`, the campaign runner with its in-worker batch)
number attempts and give them ids the same way for the same schedule, because all three ask the
delivery policy (faasemu/delivery/policy.py). Real worker processes, no server.

The schedule covers what the policy rules on: a handler failure and its retry, an events file that
repeats an id (the same event delivered again), an injected failure before the handler and a lost
acknowledgement, each followed by one redelivery outside the function's `retries`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

from conftest import run_cli, write_project
from rich.console import Console as RichConsole

from faasemu.chaos.live import LiveChaos, LiveDecision
from faasemu.chaos.model import ChaosOptions, DeliveryRef, Fail, Inject, LostAck, Perturbation, Step, apply, canonical
from faasemu.delivery import replay
from faasemu.delivery.bus import Bus
from faasemu.delivery.eventlog import EventLog
from faasemu.delivery.policy import attempt_id
from faasemu.project.console import Console
from faasemu.project.manifest import load_manifest
from faasemu.server.supervisor import Supervisor
from faasemu.server.up import project_env
from faasemu.verify.model import Candidate
from faasemu.verify.runner import Runner

SEED = 5
HANDLER = '''\
import json, os


def handler(event, context):
    """An SQS consumer: one file per receive, then fail while the receive count is at most `fail`."""
    record = event["Records"][0]
    count = int(record["attributes"]["ApproximateReceiveCount"])
    name = f"{record['messageId']}-{count}.json"
    with open(os.path.join(os.environ["FAASEMU_STATE"], name), "w") as file:
        json.dump({"receipt": record["receiptHandle"], "request_id": context.aws_request_id}, file)
    if count <= json.loads(record["body"]).get("fail", 0):
        raise RuntimeError(f"receive {count} fails")
'''
# e1 twice (a repeated id), e2 fails its first receive, e3 gets an injected failure, e4 a lost ack
EVENTS = [("e1", {}), ("e2", {"fail": 1}), ("e1", {}), ("e3", {}), ("e4", {})]
INJECT: dict[str, Inject] = {"e3": "fail", "e4": "lost-ack"}
# (event id, attempt) of every handler run: e3's first attempt failed before its handler ran
EXPECTED = {("e1", 1), ("e1", 2), ("e2", 1), ("e2", 2), ("e3", 2), ("e4", 1), ("e4", 2)}


def project(root: Path) -> Path:
    write_project(root, {
        "faasemu.yaml": """\
            state:
              dir: state
            functions:
              rec:
                handler: app.py:handler
                events: [order.*]
                event_source: sqs
                retries: 1
                concurrency: 1
        """,
        "app.py": HANDLER,
    })
    return root


def events() -> list[dict[str, Any]]:
    return [{"specversion": "1.0", "id": event_id, "source": "test", "type": "order.placed",
             "datacontenttype": "application/json", "data": data} for event_id, data in EVENTS]


def receipt(event_id: str, attempt: int, seed: int = SEED) -> str:
    """The receiptHandle the aws-lambda runtime derives from the policy's attempt id."""
    digest = hashlib.sha256(f"{attempt_id(seed, 'rec', event_id, attempt)}\0{event_id}".encode()).digest()
    return "AQEB" + base64.b64encode(digest * 3).decode()


def read_folder(folder: Path) -> dict[tuple[str, int], dict[str, str]]:
    return {(p.stem.rsplit("-", 1)[0], int(p.stem.rsplit("-", 1)[1])): json.loads(p.read_text())
            for p in folder.glob("*.json")}


def check(runs: dict[tuple[str, int], dict[str, str]]) -> dict[tuple[str, int], dict[str, str]]:
    assert set(runs) == EXPECTED
    for (event_id, attempt), seen in runs.items():
        assert seen["receipt"] == receipt(event_id, attempt), (event_id, attempt)
    return runs


def perturbations(baseline: list[DeliveryRef]) -> tuple[Perturbation, ...]:
    """e3 fails before its handler and e4 loses its ack; both are redelivered after the last event."""
    by_id = {ref.event_id: ref.index for ref in baseline}
    last = float(len(baseline))
    return (Fail(by_id["e3"], last), LostAck(by_id["e4"], last + 1))


def schedule(manifest: Any) -> list[Step]:
    baseline = canonical(events(), manifest.functions)
    return apply(baseline, perturbations(baseline))


def replay_runs(root: Path) -> dict[tuple[str, int], dict[str, str]]:
    manifest = load_manifest(str(root / "faasemu.yaml"))
    state = root / "replay-state"
    state.mkdir()
    env = {"FAASEMU_STATE": str(state), "FAASEMU_SINK_URL": "http://127.0.0.1:9/sink",
           "FAASEMU_EVENTS_URL": "http://127.0.0.1:9/events"}
    results: list[replay.StepResult] = []
    progress = replay.ReplayProgress(0, "deliveries")
    quiet = RichConsole(file=io.StringIO())
    asyncio.run(replay._execute(manifest, events(), schedule(manifest), env, SEED, 0.01, quiet, results, progress))
    assert [(r.step.ref.event_id, r.attempts, r.status) for r in results] == [
        ("e1", [1], "ok"), ("e2", [1, 2], "ok"), ("e1", [2], "ok"), ("e3", [1], "fail*"), ("e4", [1], "lost*"),
        ("e3", [2], "ok"), ("e4", [2], "ok")]
    return read_folder(state)


def campaign_runs(root: Path) -> dict[tuple[str, int], dict[str, str]]:
    manifest = load_manifest(str(root / "faasemu.yaml"))
    baseline = canonical(events(), manifest.functions)
    candidate = Candidate(None, perturbations(baseline))

    async def run() -> Any:
        async with Runner(manifest, events(), baseline, SEED, lanes=1) as runner:
            return (await runner.run_many([candidate]))[0]

    result = asyncio.run(run())
    table = result.snapshot.table("files")
    assert table is not None
    path_at = table.columns.index("path")
    content_at = table.columns.index("content")
    runs = {}
    for row in table.rows:
        stem = Path(row[path_at]).stem
        event_id, attempt = stem.rsplit("-", 1)
        runs[(event_id, int(attempt))] = json.loads(row[content_at])
    assert result.outcomes.count("fail*") == 1 and result.outcomes.count("lost*") == 1
    return runs


class ScriptedChaos(LiveChaos):
    """Live chaos that injects exactly the schedule's failures (LiveChaos draws them from a seed)."""

    def __init__(self) -> None:
        super().__init__(ChaosOptions(), SEED)  # no shuffle: the bus holds nothing back

    def decide(self, event_id: str, function: str, serial: bool = False) -> LiveDecision:
        return LiveDecision(inject=INJECT.get(event_id))


def bus_runs(root: Path) -> dict[tuple[str, int], dict[str, str]]:
    manifest = load_manifest(str(root / "faasemu.yaml"))

    async def run() -> None:
        supervisor = Supervisor(manifest, Console(file=io.StringIO()), project_env(manifest, "http://127.0.0.1:9"))
        log = EventLog(str(root / ".faasemu" / "events.db"))
        bus = Bus(log, supervisor, seed=SEED, chaos=ScriptedChaos(), retry_delay=0.01)
        bus.start()
        try:
            for event in events():  # one post per line, in file order, as `replay --target` posts them
                await bus.publish([event], "test")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = [row for _, rows in log.recent(20) for row in rows]
                if rows and all(row.status != "pending" for row in rows):
                    break
                await asyncio.sleep(0.05)
        finally:
            await bus.close()
            await supervisor.close()

    asyncio.run(run())
    return read_folder(root / "state")


def test_bus_replay_and_campaign_number_and_identify_attempts_alike(tmp_path: Path) -> None:
    project(tmp_path)
    from_replay = check(replay_runs(tmp_path))
    from_campaign = check(campaign_runs(tmp_path))
    from_bus = check(bus_runs(tmp_path))
    # request ids too: SQS receives are new invocations, so they follow the attempt in every path
    assert from_replay == from_campaign == from_bus


def test_invoke_gives_an_event_the_attempt_id_the_bus_would(tmp_path: Path) -> None:
    """`faasemu invoke --event` once spelled the formula with an octal escape (`\\01`), so its id
    differed from the bus's attempt 1; it now asks the policy (seed 0, attempt 1)."""
    project(tmp_path)
    result = run_cli("invoke", "rec", "--event", "order.placed", "--data", "{}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    event_id = json.loads(result.stdout)["event"]
    (seen,) = read_folder(tmp_path / "state").items()
    assert seen[0] == (event_id, 1) and seen[1]["receipt"] == receipt(event_id, 1, seed=0)
