"""The AWS Lambda Invoke API of `faasemu up`, driven by a real boto3 client with `endpoint_url`."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest
from conftest import Server, write_project

HANDLERS = '''\
import json
import os
import sqlite3


def echo(event, context):
    return {"got": event, "function": context.function_name, "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis()}


def boom(event, context):
    raise ValueError("kaput: " + str(event.get("why")))


def record_then_fail_once(event, context):
    with sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30) as db:
        db.execute("INSERT INTO calls (fn, event, request_id) VALUES (?, ?, ?)",
                   (context.function_name, json.dumps(event), context.aws_request_id))
        attempts = db.execute("SELECT COUNT(*) FROM calls WHERE event = ?", (json.dumps(event),)).fetchone()[0]
    if attempts == 1:
        raise RuntimeError("the first attempt fails")
'''

SCHEMA = "CREATE TABLE calls (n INTEGER PRIMARY KEY AUTOINCREMENT, fn TEXT, event TEXT, request_id TEXT);\n"

MANIFEST = """\
state:
  schema: schema.sql
functions:
  echo:
    handler: handlers.py:echo
  boom:
    handler: handlers.py:boom
  async-worker:
    handler: handlers.py:record_then_fail_once
    retries: 2
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("invoke-api")
    manifest = write_project(root, {"faasemu.yaml": MANIFEST, "handlers.py": HANDLERS, "schema.sql": SCHEMA})
    server = Server(manifest, "--retry-delay", "0.05").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    return boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def calls(root: Path) -> list[tuple[str, Any, str]]:
    db = sqlite3.connect(root / ".faasemu" / "state.db", timeout=10)
    try:
        rows = db.execute("SELECT fn, event, request_id FROM calls ORDER BY n").fetchall()
    finally:
        db.close()
    return [(fn, json.loads(event), request_id) for fn, event, request_id in rows]


def test_request_response_returns_the_handlers_result(client: Any) -> None:
    response = client.invoke(FunctionName="echo", Payload=json.dumps({"name": "ada", "n": [1, 2]}).encode())
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    result = json.loads(response["Payload"].read())
    assert result["got"] == {"name": "ada", "n": [1, 2]}
    assert result["function"] == "echo"
    assert 0 < result["remaining_ms"] <= 3000  # the default Lambda timeout, counted to the real deadline
    assert result["request_id"] == response["ResponseMetadata"]["RequestId"]


def test_an_empty_payload_is_an_empty_event(client: Any) -> None:
    response = client.invoke(FunctionName="echo")
    assert json.loads(response["Payload"].read())["got"] == {}


def test_a_function_arn_names_the_function(client: Any) -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:echo"
    response = client.invoke(FunctionName=arn, Payload=b'{"via": "arn"}')
    assert json.loads(response["Payload"].read())["got"] == {"via": "arn"}


def test_a_raising_handler_is_an_unhandled_function_error(client: Any, server: Server) -> None:
    response = client.invoke(FunctionName="boom", InvocationType="RequestResponse", Payload=b'{"why": "testing"}')
    assert response["StatusCode"] == 200  # as on Lambda: the invocation worked, the function failed
    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorMessage"] == "kaput: testing"
    assert payload["errorType"] == "ValueError"
    assert any("handlers.py" in frame for frame in payload["stackTrace"])
    server.wait_for_output("kaput: testing")  # the traceback always goes to the console


def test_event_invocation_is_accepted_and_delivered_through_the_bus_with_retries(
    client: Any, server: Server
) -> None:
    root = server.manifest.parent
    payload = {"job": "resize", "id": time.time_ns()}
    response = client.invoke(FunctionName="async-worker", InvocationType="Event", Payload=json.dumps(payload).encode())
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        mine = [c for c in calls(root) if c[1] == payload]
        if len(mine) >= 2:
            break
        time.sleep(0.03)
    else:
        raise AssertionError(f"the Event invocation was not retried after its failure: {calls(root)}")
    assert [fn for fn, _, _ in mine] == ["async-worker", "async-worker"]  # the raw payload, twice
    # Issue 8: Lambda's own retries of an asynchronous invocation keep its request id, the one Invoke answered
    assert mine[0][2] == mine[1][2] == response["ResponseMetadata"]["RequestId"]
    # the bus keeps it: stored, and acknowledged once the retry succeeded
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = httpx.get(f"{server.url}/_faasemu/events", params={"limit": 1000}, timeout=10).json()["events"]
        mine_stored = [e for e in events if e["origin"] == "invoke-api"
                       and e["deliveries"] and e["deliveries"][0]["function"] == "async-worker"]
        if mine_stored and mine_stored[-1]["deliveries"][0]["status"] == "done":
            break
        time.sleep(0.03)
    else:
        raise AssertionError(f"the Event invocation never ended done: {events}")
    assert mine_stored[-1]["deliveries"][0]["attempts"] == 2
    time.sleep(0.2)
    assert len([c for c in calls(root) if c[1] == payload]) == 2  # done: not delivered again


def test_an_unknown_function_is_resource_not_found(client: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.invoke(FunctionName="no-such-function", Payload=b"{}")
    error = info.value.response["Error"]
    assert error["Code"] == "ResourceNotFoundException"
    assert "no-such-function" in error["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no-such-function", InvocationType="Event", Payload=b"{}")
