"""`up --overlap P` and `replay --overlap P`: a delivery's copy starts together with it, on a second
worker of the function (a platform scaling out), except for a function that reserves `concurrency: 1`
(docs/delivery.md#live-chaos-in-up). Real `faasemu up` and `faasemu replay` processes, real workers;
each handler records its pid and when it ran, so the test sees two processes at the same time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import run_cli, write_project

from faasemu.chaos.live import LiveChaos
from faasemu.chaos.model import ChaosOptions

HANDLER = '''\
import json, os, time


def handler(event, context):
    """Hold the delivery long enough that a copy started with it runs beside it."""
    started = time.time()
    time.sleep(0.4)
    name = f"{os.environ['AWS_LAMBDA_FUNCTION_NAME']}-{event['id']}-{context.aws_request_id}.json"
    with open(os.path.join(os.environ["FAASEMU_STATE"], name), "w") as file:
        json.dump({"pid": os.getpid(), "start": started, "end": time.time()}, file)
'''
MANIFEST = """\
    state:
      dir: state
    functions:
      racer:
        handler: app.py:handler
        events: [order.*]
      single:
        handler: app.py:handler
        events: [order.*]
        concurrency: 1
"""


def project(root: Path) -> Path:
    manifest = write_project(root, {"faasemu.yaml": MANIFEST, "app.py": HANDLER})
    (root / "state").mkdir(exist_ok=True)
    return manifest


def runs(root: Path, function: str, event_id: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / "state").glob(f"{function}-{event_id}-*.json"))]


def assert_overlapped(pair: list[dict[str, Any]]) -> None:
    assert len(pair) == 2, pair
    first, second = pair
    assert first["pid"] != second["pid"], "both copies ran in one worker"
    assert first["start"] < second["end"] and second["start"] < first["end"], f"not at the same time: {pair}"


def test_up_overlap_runs_the_copy_beside_the_original_on_a_second_worker(run_server, tmp_path: Path) -> None:
    server = run_server(project(tmp_path), "--overlap", "1", "--seed", "3", "--retry-delay", "0.05")
    response = httpx.post(f"{server.url}/_faasemu/events", json={"type": "order.placed", "id": "o1", "data": {}})
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(runs(tmp_path, "racer", "o1")) < 2 or not runs(tmp_path, "single", "o1")):
        time.sleep(0.05)
    assert_overlapped(runs(tmp_path, "racer", "o1"))
    time.sleep(0.6)  # a copy of `single` would have finished by now
    assert len(runs(tmp_path, "single", "o1")) == 1, "a function with concurrency: 1 was overlapped"
    out = server.wait_for_output("overlap")
    assert "o1 -> racer and its copy start together on two workers" in out, out
    assert "--overlap" in out and "--seed 3" in out, out  # the chaos line names how to get it again


def test_replay_overlap_runs_each_copy_beside_its_original(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "events.jsonl").write_text("".join(
        json.dumps({"type": "order.placed", "id": f"e{n}", "data": {}}) + "\n" for n in range(2)))
    result = run_cli("replay", "events.jsonl", "--overlap", "1", "--seed", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for event_id in ("e0", "e1"):
        assert_overlapped(runs(tmp_path, "racer", event_id))
        assert len(runs(tmp_path, "single", event_id)) == 1
    assert "overlap" in result.stdout and "--overlap 1" in result.stdout, result.stdout


def test_replay_overlap_to_a_running_up_is_refused_with_the_way_out(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "events.jsonl").write_text(json.dumps({"type": "order.placed", "id": "x", "data": {}}) + "\n")
    result = run_cli("replay", "events.jsonl", "--target", "http://127.0.0.1:9", "--overlap", "0.5", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--overlap" in result.stderr and "faasemu up" in result.stderr, result.stderr


BATCH_HANDLER = '''\
import json, os


def handler(event, context):
    for record in event["Records"]:
        name = f"{record['messageId']}-{record['attributes']['ApproximateReceiveCount']}.json"
        with open(os.path.join(os.environ["FAASEMU_STATE"], name), "w") as file:
            json.dump({"pid": os.getpid()}, file)
'''


def test_up_overlap_on_a_batching_function_delivers_every_copy(run_server, tmp_path: Path) -> None:
    """An original taken into another delivery's SQS batch would strand its copy: it is not taken."""
    manifest = write_project(tmp_path, {"faasemu.yaml": """\
        state:
          dir: state
        functions:
          batcher:
            handler: app.py:handler
            events: [order.*]
            event_source: sqs
            batch_size: 5
    """, "app.py": BATCH_HANDLER})
    (tmp_path / "state").mkdir()
    server = run_server(manifest, "--overlap", "0.5", "--seed", "3", "--retry-delay", "0.05")
    events = [{"type": "order.placed", "id": f"b{n}", "data": {}} for n in range(10)]
    response = httpx.post(f"{server.url}/_faasemu/events", content=json.dumps(events).encode(),
                          headers={"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 202, response.text
    live = LiveChaos(ChaosOptions(overlap=0.5), 3)  # the decisions `up --seed 3` draws, keyed by event id
    overlapped = {n for n in range(10) if live.decide(f"b{n}", "batcher").overlap}
    assert 0 < len(overlapped) < 10  # some alone (so batched), some with a copy
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list((tmp_path / "state").glob("*.json"))) < 10 + len(overlapped):
        time.sleep(0.05)
    expected = sorted([f"b{n}-1" for n in range(10)] + [f"b{n}-2" for n in overlapped])
    time.sleep(0.5)
    assert sorted(p.stem for p in (tmp_path / "state").glob("*.json")) == expected, server.output()
