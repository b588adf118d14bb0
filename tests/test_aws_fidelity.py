"""aws-lambda fidelity found by outside checks (issue 8), through real `faasemu up`, `replay` and `chaos`:
request ids shaped and kept as Lambda's, EventBridge's rule that `detail` is a JSON object, and API
Gateway's answers to a handler that raised.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, run_cli, write_project

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

RECORDER = '''\
import json
import os


def _event_id(event):
    if "Records" in event:
        record = event["Records"][0]
        return record.get("messageId") or record["Sns"]["MessageId"]
    return event["id"]


def _record(event, context):
    with open(f"calls-{context.function_name}.jsonl", "a") as out:
        out.write(json.dumps({"event_id": _event_id(event), "request_id": context.aws_request_id,
                              "event": event}) + "\\n")


def flaky(event, context):
    """Records every call; the first call for an event fails."""
    _record(event, context)
    marker = f"seen-{context.function_name}-{_event_id(event)}"
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first attempt fails")


def record(event, context):
    _record(event, context)


def api_boom(event, context):
    raise ValueError("no route for [/orders] \\u00e9")
'''

MANIFEST = """\
functions:
  bridge:
    handler: rec.py:flaky
    events: ["fid.*"]
  queue:
    handler: rec.py:flaky
    event_source: sqs
    events: ["fid.*"]
  topic:
    handler: rec.py:flaky
    event_source: sns
    events: ["fid.*"]
  only-queue:
    handler: rec.py:record
    event_source: sqs
    events: ["list.*"]
  http-api:
    handler: rec.py:api_boom
    http: {path: /boom, methods: [GET]}
  rest-api:
    handler: rec.py:api_boom
    payload: v1
    http: {path: /rest/boom, methods: [GET]}
"""


def project(root: Path, events: str = "") -> Path:
    return write_project(root, {"faasemu.yaml": MANIFEST, "rec.py": RECORDER, "events.jsonl": events})


def calls(root: Path, fn: str) -> list[dict[str, Any]]:
    path = root / f"calls-{fn}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_calls(root: Path, fn: str, event_id: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c for c in calls(root, fn) if c["event_id"] == event_id]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{fn} got {calls(root, fn)} for {event_id}, expected {count} calls")


def post(server: Server, body: Any, **kw: Any) -> httpx.Response:
    kw.setdefault("headers", {"content-type": "application/json"})
    return httpx.post(f"{server.url}/_faasemu/events", content=json.dumps(body).encode() if body is not None
                      else kw.pop("content"), timeout=20, **kw)


def stored_ids(server: Server) -> set[str]:
    events = httpx.get(f"{server.url}/_faasemu/events", params={"limit": 1000}, timeout=10).json()["events"]
    return {e["id"] for e in events}


# -- request ids ---------------------------------------------------------------------------------


def test_bus_request_ids_are_uuids_kept_by_async_retries_and_new_per_sqs_receive(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path), "--retry-delay", "0.05", "--seed", "11")
    event_id = f"order-{uuid.uuid4().hex[:8]}"
    assert post(server, {"type": "fid.order", "id": event_id, "data": {"n": 1}}).status_code == 202
    bridge = wait_for_calls(tmp_path, "bridge", event_id, 2)
    topic = wait_for_calls(tmp_path, "topic", event_id, 2)
    queue = wait_for_calls(tmp_path, "queue", event_id, 2)
    for fn_calls in (bridge, topic, queue):
        assert all(UUID4.fullmatch(c["request_id"]) for c in fn_calls), fn_calls  # not 16 hex digits
    # EventBridge and SNS invoke asynchronously: Lambda's own retry keeps the request id
    assert bridge[0]["request_id"] == bridge[1]["request_id"]
    assert topic[0]["request_id"] == topic[1]["request_id"]
    # an SQS event source mapping polls: every receive is a new invocation
    assert queue[0]["request_id"] != queue[1]["request_id"]
    assert len({c["request_id"] for c in bridge + topic + queue}) == 4  # each function its own


def test_replay_request_ids_follow_the_copy_for_async_sources_and_the_attempt_for_sqs(tmp_path: Path) -> None:
    project(tmp_path, json.dumps({"type": "fid.order", "id": "e1", "data": {"n": 1}}) + "\n")

    def replay() -> tuple[list[str], list[str]]:
        for marker in tmp_path.glob("seen-*"):
            marker.unlink()
        for log in tmp_path.glob("calls-*.jsonl"):
            log.unlink()
        result = run_cli("replay", "events.jsonl", "--duplicates", "1", "--seed", "7", "--retry-delay", "0.01",
                         cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        return ([c["request_id"] for c in calls(tmp_path, "bridge")],
                [c["request_id"] for c in calls(tmp_path, "queue")])

    bridge, queue = replay()
    # the original (failed, then retried: one id) and a duplicate from the source (a new one)
    assert len(bridge) == 3 and sorted(bridge.count(rid) for rid in set(bridge)) == [1, 2], bridge
    assert len(queue) == 3 and len(set(queue)) == 3, queue  # every receive its own
    assert all(UUID4.fullmatch(rid) for rid in bridge + queue)
    assert replay() == (bridge, queue)  # a pure function of (seed, function, event, copy or attempt)


def test_campaign_runs_give_uuid_request_ids(tmp_path: Path) -> None:
    manifest = """\
functions:
  bridge:
    handler: rec.py:record
    events: ["fid.*"]
  queue:
    handler: rec.py:record
    event_source: sqs
    events: ["fid.*"]
"""
    events = "".join(json.dumps({"type": "fid.order", "id": f"e{n}", "data": {"n": n}}) + "\n" for n in range(2))
    write_project(tmp_path, {"faasemu.yaml": manifest, "rec.py": RECORDER, "events.jsonl": events})
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "3", cwd=tmp_path, timeout=300)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    seen = calls(tmp_path, "bridge") + calls(tmp_path, "queue")
    assert seen and all(UUID4.fullmatch(c["request_id"]) for c in seen), seen[:3]


# -- EventBridge's detail ------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "found"), [
    ({"type": "fid.order", "data": [1, 2]}, "a JSON list"),
    ({"type": "fid.order", "data": "text"}, "a JSON string"),
    ({"type": "fid.order", "data": 42}, "a JSON number"),
])
def test_the_ingress_refuses_data_that_is_not_an_object_for_eventbridge(
    tmp_path: Path, run_server, body: dict[str, Any], found: str
) -> None:
    server = run_server(project(tmp_path))
    event_id = f"bad-{uuid.uuid4().hex[:8]}"
    response = post(server, {**body, "id": event_id})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert event_id in message and "'bridge'" in message and found in message
    assert "must be a JSON object" in message and "MalformedDetail" in message and "nothing was stored" in message
    assert event_id not in stored_ids(server)


def test_text_in_binary_mode_is_refused_and_functions_that_take_it_still_get_it(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path))
    headers = {"ce-specversion": "1.0", "ce-id": "txt-1", "ce-source": "/tests", "ce-type": "fid.note",
               "content-type": "text/plain"}
    response = httpx.post(f"{server.url}/_faasemu/events", content=b"hello", headers=headers, timeout=20)
    assert response.status_code == 400 and "text (text/plain)" in response.json()["message"], response.text
    # an SQS subscriber takes any body: not refused
    assert post(server, {"type": "list.items", "id": "list-1", "data": [1, 2]}).status_code == 202
    [call] = wait_for_calls(tmp_path, "only-queue", "list-1", 1)
    assert call["event"]["Records"][0]["body"] == "[1, 2]"


def test_an_event_without_data_has_an_empty_detail(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path), "--retry-delay", "0.05")
    assert post(server, {"type": "fid.ping", "id": "ping-1"}).status_code == 202
    first = wait_for_calls(tmp_path, "bridge", "ping-1", 1)[0]
    assert first["event"]["detail"] == {}


@pytest.mark.parametrize("command", ["replay", "chaos"])
def test_events_files_with_such_data_stop_at_their_line(tmp_path: Path, command: str) -> None:
    lines = [{"type": "fid.order", "id": "ok-1", "data": {"n": 1}}, {"type": "list.items", "data": [1]},
             {"type": "fid.order", "id": "bad-3", "data": ["not", "an", "object"]}]
    project(tmp_path, "\n".join(json.dumps(line) for line in lines) + "\n")
    result = run_cli(command, "events.jsonl", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "events.jsonl:3" in result.stderr and "'bad-3'" in result.stderr and "'bridge'" in result.stderr
    assert "must be a JSON object" in result.stderr
    assert "Traceback" not in result.stderr
    assert calls(tmp_path, "bridge") == []  # nothing was delivered


# -- API Gateway's answer to an unhandled error --------------------------------------------------


def test_an_unhandled_error_answers_as_api_gateway_does(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path))
    with httpx.Client(base_url=server.url, timeout=20) as client:
        http_api = client.get("/boom")
        rest_api = client.get("/rest/boom")
    assert (http_api.status_code, http_api.content) == (500, b'{"message":"Internal Server Error"}')
    assert (rest_api.status_code, rest_api.content) == (502, b'{"message": "Internal server error"}')
    for response in (http_api, rest_api):
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-faasemu-error"] == "ValueError: no route for [/orders] \\xe9"
    output = server.wait_for_output("Traceback")
    assert "no route for" in output and "rec.py" in output
