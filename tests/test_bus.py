"""The event bus of a real `faasemu up`, as a user drives it: POST /_faasemu/events in every format,
routing, the event shapes handlers get, retries, dead letters, redrive, emission, the sink,
concurrency, and live chaos. Handlers record what they receive into $FAASEMU_STATE (SQLite);
the tests read that table, the HTTP answers, `faasemu events` and the console output.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from conftest import Server, free_port, run_cli, write_project

RECORDER = '''\
"""Handlers that record every call into $FAASEMU_STATE, so the tests can see what arrived."""

import json
import os
import sqlite3
import time
import urllib.request


def _db():
    return sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)


def save(event, context, started=None):
    with _db() as db:
        db.execute(
            "INSERT INTO calls (fn, event, request_id, started, ended) VALUES (?, ?, ?, ?, ?)",
            (context.function_name, json.dumps(event), context.aws_request_id, started or time.time(), time.time()),
        )


def record(event, context):
    save(event, context)
    return {"ok": True}


def fail_always(event, context):
    save(event, context)
    raise RuntimeError("this handler always fails")


def fail_once(event, context):
    with _db() as db:
        seen = db.execute("SELECT COUNT(*) FROM calls WHERE fn = ? AND json_extract(event, '$.id') = ?",
                          (context.function_name, event["id"])).fetchone()[0]
    save(event, context)
    if not seen:
        raise RuntimeError("the first attempt fails")


def slow(event, context):
    started = time.time()
    time.sleep(float(event["detail"]["sleep"]))
    save(event, context, started)


def _post(url, payload):
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"content-type": "application/json"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def emit(event, context):
    _post(os.environ["FAASEMU_EVENTS_URL"],
          {"type": "child.made", "source": "emitter", "data": {"parent": event["id"]}})
    save(event, context)


def send_email(event, context):
    _post(os.environ["FAASEMU_SINK_URL"] + "/email", {"to": "ada@example.com", "event": event["id"]})
    save(event, context)
'''

SCHEMA = """\
CREATE TABLE calls (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    fn TEXT NOT NULL,
    event TEXT NOT NULL,
    request_id TEXT,
    started REAL,
    ended REAL
);
"""

MANIFEST = """\
name: bus
port: {port}
state:
  schema: schema.sql
functions:
  record-ingress:
    handler: rec.py:record
    events: ["ingress.*"]
  watch-orders:
    handler: rec.py:record
    events: ["order.*"]
  sqs-orders:
    handler: rec.py:record
    events: [order.created]
    event_source: sqs
  sns-orders:
    handler: rec.py:record
    events: [order.created]
    event_source: sns
  raw-orders:
    handler: rec.py:record
    events: [order.created]
    event_source: raw
  always-fails:
    handler: rec.py:fail_always
    events: [fail.always]
    event_source: sqs
    retries: 2
  flaky:
    handler: rec.py:fail_once
    events: [fail.once]
    retries: 2
  emitter:
    handler: rec.py:emit
    events: [emit.request]
  child:
    handler: rec.py:record
    events: [child.made]
  mailer:
    handler: rec.py:send_email
    events: [mail.request]
  serial:
    handler: rec.py:slow
    events: [slow.serial]
    concurrency: 1
  parallel:
    handler: rec.py:slow
    events: [slow.parallel]
    concurrency: 3
"""

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


# --- helpers -------------------------------------------------------------------------------------


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def calls(root: Path, fn: str | None = None) -> list[dict[str, Any]]:
    """What the handlers recorded, in the order they recorded it."""
    db = sqlite3.connect(root / ".faasemu" / "state.db", timeout=10)
    try:
        query = "SELECT fn, event, request_id, started, ended FROM calls"
        rows = db.execute(query + (" WHERE fn = ?" if fn else "") + " ORDER BY n", (fn,) if fn else ()).fetchall()
    finally:
        db.close()
    return [{"fn": r[0], "event": json.loads(r[1]), "request_id": r[2], "started": r[3], "ended": r[4]} for r in rows]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.03)


def event_id_of(call: dict[str, Any]) -> str | None:
    """The stable event id in whatever shape the handler got (EventBridge, SQS, SNS)."""
    event = call["event"]
    if isinstance(event, dict) and "Records" in event:
        record = event["Records"][0]
        return record.get("messageId") or record.get("Sns", {}).get("MessageId")
    return event.get("id") if isinstance(event, dict) else None


def received(root: Path, fn: str, event_id: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Wait until `fn` recorded at least `count` calls for `event_id`; returns them."""
    def found() -> list[dict[str, Any]]:
        mine = [c for c in calls(root, fn) if event_id_of(c) == event_id]
        return mine if len(mine) >= count else []

    return wait_for(found, f"{count} call(s) of {fn} for event {event_id}", timeout)


def stored_events(server: Server, **params: Any) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/_faasemu/events", params={"limit": 100000, **params}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["events"]


def stored(server: Server, event_id: str) -> dict[str, Any] | None:
    return next((e for e in stored_events(server) if e["id"] == event_id), None)


def delivery_status(server: Server, event_id: str, function: str) -> dict[str, Any] | None:
    event = stored(server, event_id)
    if event is None:
        return None
    return next((d for d in event["deliveries"] if d["function"] == function), None)


def post(server: Server, body: Any = None, *, content: bytes | None = None, content_type: str | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    all_headers = dict(headers or {})
    if content_type:
        all_headers["content-type"] = content_type
    if content is None:
        content = json.dumps(body).encode()
        all_headers.setdefault("content-type", "application/json")
    return httpx.post(f"{server.url}/_faasemu/events", content=content, headers=all_headers, timeout=30)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda p: (p[0], p[1]))
    running = best = 0
    for _, step in points:
        running += step
        best = max(best, running)
    return best


# --- the shared server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("bus")
    server = Server(root / "faasemu.yaml", "--retry-delay", "0.05")
    # The manifest names the server's port, as a user's would: `faasemu events --redrive` finds it there.
    write_project(root, {"faasemu.yaml": MANIFEST.format(port=server.port), "schema.sql": SCHEMA, "rec.py": RECORDER})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def root(bus: Server) -> Path:
    return bus.manifest.parent


# --- ingress formats -----------------------------------------------------------------------------


def test_plain_json_gets_an_id_and_is_delivered_as_eventbridge(bus: Server, root: Path) -> None:
    marker = uid("plain")
    response = post(bus, {"type": "ingress.plain", "data": {"marker": marker}})
    assert response.status_code == 202, response.text
    answer = response.json()
    [event_id] = answer["ids"]
    assert event_id
    assert answer["deliveries"] == {event_id: ["record-ingress"]}
    assert answer["unrouted"] == []
    [call] = received(root, "record-ingress", event_id)
    event = call["event"]
    assert event["id"] == event_id
    assert event["detail-type"] == "ingress.plain"
    assert event["source"] == "faasemu"
    assert event["detail"] == {"marker": marker}
    assert event["version"] == "0"
    assert event["resources"] == []


def test_structured_cloudevent(bus: Server, root: Path) -> None:
    event_id = uid("structured")
    body = {"specversion": "1.0", "id": event_id, "source": "tests/structured", "type": "ingress.structured",
            "time": "2024-05-01T12:00:00Z", "datacontenttype": "application/json", "data": {"n": 1}}
    response = post(bus, content=json.dumps(body).encode(), content_type=STRUCTURED)
    assert response.status_code == 202, response.text
    assert response.json()["ids"] == [event_id]
    [call] = received(root, "record-ingress", event_id)
    event = call["event"]
    assert (event["id"], event["source"], event["detail-type"], event["detail"]) == (
        event_id, "tests/structured", "ingress.structured", {"n": 1})
    assert event["time"] == "2024-05-01T12:00:00Z"


def test_batch_of_cloudevents(bus: Server, root: Path) -> None:
    ids = [uid(f"batch{i}") for i in range(3)]
    batch = [{"specversion": "1.0", "id": i, "source": "tests/batch", "type": "ingress.batch", "data": {"i": n}}
             for n, i in enumerate(ids)]
    response = post(bus, content=json.dumps(batch).encode(), content_type=BATCH)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["ids"] == ids
    assert answer["deliveries"] == {i: ["record-ingress"] for i in ids}
    for n, event_id in enumerate(ids):
        [call] = received(root, "record-ingress", event_id)
        assert call["event"]["detail"] == {"i": n}


def test_binary_mode_with_ce_headers(bus: Server, root: Path) -> None:
    event_id = uid("binary")
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": "urn:tests%20binary",
               "ce-type": "ingress.binary", "ce-subject": "s-1"}
    response = post(bus, content=b'{"sku": "a1", "quantity": 2}', content_type="application/json", headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["ids"] == [event_id]
    [call] = received(root, "record-ingress", event_id)
    event = call["event"]
    assert event["source"] == "urn:tests binary"  # percent-decoded, as the HTTP binding says
    assert event["detail-type"] == "ingress.binary"
    assert event["detail"] == {"sku": "a1", "quantity": 2}


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_events_built_with_the_cloudevents_sdk(bus: Server, root: Path, mode: str) -> None:
    event_id = uid(f"sdk-{mode}")
    sdk_event = CloudEvent({"type": "ingress.sdk", "source": "https://example.com/sdk", "id": event_id},
                           {"mode": mode})
    message = to_structured_event(sdk_event) if mode == "structured" else to_binary_event(sdk_event)
    response = post(bus, content=message.body, headers=dict(message.headers))
    assert response.status_code == 202, response.text
    assert response.json()["ids"] == [event_id]
    [call] = received(root, "record-ingress", event_id)
    event = call["event"]
    assert (event["id"], event["source"], event["detail-type"], event["detail"]) == (
        event_id, "https://example.com/sdk", "ingress.sdk", {"mode": mode})


@pytest.mark.parametrize(
    ("content_type", "headers", "body", "problem"),
    [
        (STRUCTURED, {}, {"specversion": "1.0", "id": "bad-1", "source": "t"}, "'type'"),
        (STRUCTURED, {}, {"specversion": "0.2", "id": "bad-2", "source": "t", "type": "ingress.bad"}, "specversion"),
        ("application/json", {}, {"type": "ingress.bad", "id": "bad-3", "time": "yesterday"}, "'time'"),
        (BATCH, {}, [{"type": "ingress.bad", "id": "bad-4"}, {"id": "bad-5", "data": 1}], "index 1"),
        (BATCH, {}, {"type": "ingress.bad", "id": "bad-6"}, "array"),
        ("application/json", {"ce-specversion": "1.0", "ce-id": "bad-7", "ce-source": "t"}, {"a": 1}, "'type'"),
        ("application/json", {}, b'{"type": "ingress.bad", "id": "bad-8",', "JSON"),
    ],
    ids=["no-type", "specversion", "bad-time", "batch-item", "batch-not-list", "binary-no-type", "not-json"],
)
def test_invalid_events_answer_400_naming_the_problem_and_store_nothing(
    bus: Server, content_type: str, headers: dict[str, str], body: Any, problem: str
) -> None:
    before = stored_events(bus)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = post(bus, content=content, content_type=content_type, headers=headers)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert problem in message
    assert "nothing was stored" in message
    after = stored_events(bus)
    assert len(after) == len(before)
    assert not [e for e in after if e["id"].startswith("bad-")]


def test_refused_events_do_not_show_in_faasemu_events(bus: Server, root: Path) -> None:
    bad = [{"type": "ingress.bad", "id": "refused-1"}, {"type": "", "id": "refused-2"}]
    assert post(bus, content=json.dumps(bad).encode(), content_type=BATCH).status_code == 400
    result = run_cli("events", "--json", "--limit", "100000", cwd=root)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed, "faasemu events --json lists the events the other tests stored"
    assert not [e for e in listed if e["id"].startswith("refused-")]


def test_batches_over_1000_events_answer_413_and_store_nothing(bus: Server) -> None:
    before = len(stored_events(bus))
    tag = uid("big")
    events = [{"type": "bulk.nobody", "id": f"{tag}-{i}"} for i in range(1001)]
    response = post(bus, content=json.dumps(events).encode(), content_type=BATCH)
    assert response.status_code == 413, response.text
    assert "1000" in response.json()["message"]
    assert len(stored_events(bus)) == before
    # 1000 is the limit itself: accepted
    response = post(bus, content=json.dumps(events[:1000]).encode(), content_type=BATCH)
    assert response.status_code == 202, response.text
    assert response.json()["ids"] == [e["id"] for e in events[:1000]]
    assert len(stored_events(bus)) == before + 1000


def test_bodies_over_6_mb_answer_413_and_store_nothing(bus: Server) -> None:
    before = len(stored_events(bus))
    big = json.dumps({"type": "bulk.nobody", "id": uid("huge"), "data": "x" * (6 * 1024 * 1024)}).encode()
    response = post(bus, content=big, content_type="application/json")
    assert response.status_code == 413, response.text
    assert "6 MB" in response.json()["message"]
    assert len(stored_events(bus)) == before
    below = json.dumps({"type": "bulk.nobody", "id": uid("large"), "data": "x" * (5 * 1024 * 1024)}).encode()
    assert post(bus, content=below, content_type="application/json").status_code == 202


# --- routing and event shapes --------------------------------------------------------------------


def test_routing_by_glob_reaches_every_subscribed_function_and_no_other(bus: Server, root: Path) -> None:
    created, shipped = uid("created"), uid("shipped")
    response = post(bus, content=json.dumps([
        {"type": "order.created", "id": created, "source": "shop", "data": {"order": created}},
        {"type": "order.shipped", "id": shipped, "source": "shop", "data": {"order": shipped}},
    ]).encode(), content_type=BATCH)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert sorted(answer["deliveries"][created]) == ["raw-orders", "sns-orders", "sqs-orders", "watch-orders"]
    assert answer["deliveries"][shipped] == ["watch-orders"]  # only the glob order.* matches order.shipped
    for fn in ("watch-orders", "sqs-orders", "sns-orders"):
        received(root, fn, created)
    wait_for(lambda: [c for c in calls(root, "raw-orders") if c["event"] == {"order": created}], "the raw delivery")
    received(root, "watch-orders", shipped)
    time.sleep(0.2)
    others = [c for fn in ("sqs-orders", "sns-orders", "raw-orders") for c in calls(root, fn)]
    assert not [c for c in others if event_id_of(c) == shipped or c["event"] == {"order": shipped}]


def test_the_answer_lists_an_events_functions_in_manifest_order(bus: Server) -> None:
    event_id = uid("ordered")
    response = post(bus, {"type": "order.created", "id": event_id, "data": {"order": event_id}})
    assert response.status_code == 202, response.text
    # canonical order (docs/delivery.md#words): for one event, the manifest's order of functions
    assert response.json()["deliveries"][event_id] == ["watch-orders", "sqs-orders", "sns-orders", "raw-orders"]


def test_an_event_no_function_subscribes_to_is_stored_and_reported(bus: Server, root: Path) -> None:
    event_id = uid("lonely")
    response = post(bus, {"type": "nobody.listens", "id": event_id, "data": {}})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["unrouted"] == [event_id]
    assert answer["deliveries"] == {event_id: []}
    event = stored(bus, event_id)
    assert event is not None and event["type"] == "nobody.listens" and event["deliveries"] == []
    bus.wait_for_output(event_id)
    result = run_cli("events", cwd=root)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if event_id in line)
    assert "no subscriber" in line


def test_eventbridge_sqs_sns_and_raw_shapes(bus: Server, root: Path) -> None:
    event_id = uid("shape")
    data = {"order": "o-9", "total": 12.5}
    response = post(bus, {"type": "order.created", "id": event_id, "source": "shop.orders",
                          "time": "2024-05-01T12:00:00Z", "subject": "o-9", "data": data})
    assert response.status_code == 202, response.text

    [eventbridge] = received(root, "watch-orders", event_id)
    assert eventbridge["event"] == {
        "version": "0", "id": event_id, "detail-type": "order.created", "source": "shop.orders",
        "account": eventbridge["event"]["account"], "time": "2024-05-01T12:00:00Z", "region": "us-east-1",
        "resources": [], "detail": data,
    }

    [sqs] = received(root, "sqs-orders", event_id)
    [record] = sqs["event"]["Records"]
    assert record["messageId"] == event_id
    assert json.loads(record["body"]) == data
    assert isinstance(record["body"], str)
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["eventSource"] == "aws:sqs"
    assert record["receiptHandle"]

    [sns] = received(root, "sns-orders", event_id)
    [record] = sns["event"]["Records"]
    assert record["EventSource"] == "aws:sns"
    assert record["Sns"]["MessageId"] == event_id
    assert json.loads(record["Sns"]["Message"]) == data

    raw = wait_for(lambda: [c for c in calls(root, "raw-orders") if c["event"] == data], "the raw delivery")
    assert len(raw) == 1


# --- retries, dead letters, redrive --------------------------------------------------------------


def test_always_failing_handler_is_retried_then_dead_lettered_then_redriven(bus: Server, root: Path) -> None:
    event_id = uid("doomed")
    assert post(bus, {"type": "fail.always", "id": event_id, "data": {"x": 1}}).status_code == 202
    wait_for(lambda: (delivery_status(bus, event_id, "always-fails") or {}).get("status") == "dead",
             "the delivery to be dead-lettered")
    attempts = [c for c in calls(root, "always-fails") if event_id_of(c) == event_id]
    assert len(attempts) == 3  # the first delivery plus `retries: 2`
    records = [a["event"]["Records"][0] for a in attempts]
    assert {r["messageId"] for r in records} == {event_id}
    assert [r["attributes"]["ApproximateReceiveCount"] for r in records] == ["1", "2", "3"]
    assert len({r["receiptHandle"] for r in records}) == 3
    assert len({a["request_id"] for a in attempts}) == 3
    # exponential backoff from --retry-delay 0.05: 0.05 s, then 0.1 s
    gaps = [b["started"] - a["started"] for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095, gaps
    delivery = delivery_status(bus, event_id, "always-fails")
    assert delivery is not None
    assert delivery["attempts"] == 3
    assert "always fails" in delivery["last_error"]
    bus.wait_for_output("dead letter")

    dead = run_cli("events", "--dead", cwd=root)
    assert dead.returncode == 0, dead.stderr
    line = next((line for line in dead.stdout.splitlines() if event_id in line), None)
    assert line is not None, dead.stdout
    assert "always-fails" in line and "dead" in line
    dead_json = json.loads(run_cli("events", "--dead", "--json", cwd=root).stdout)
    assert event_id in [e["id"] for e in dead_json]

    redriven = run_cli("events", "--redrive", event_id, cwd=root)
    assert redriven.returncode == 0, redriven.stderr
    assert "running faasemu up" in redriven.stdout
    again = received(root, "always-fails", event_id, count=4)
    assert again[3]["event"]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "4"
    assert again[3]["event"]["Records"][0]["messageId"] == event_id
    wait_for(lambda: (delivery_status(bus, event_id, "always-fails") or {}).get("status") == "dead"
             and delivery_status(bus, event_id, "always-fails")["attempts"] > 3, "the redriven delivery to end")


REDRIVE_MANIFEST = """\
port: {port}
state:
  schema: schema.sql
functions:
  always-fails:
    handler: rec.py:fail_always
    events: [fail.always]
    retries: 0
"""


def test_redrive_reaches_a_server_started_with_port(run_server, tmp_path: Path) -> None:
    """`faasemu up --port P` runs; `faasemu events --redrive ID` must reach it, not wait for the next `up`."""
    manifest = write_project(tmp_path, {"faasemu.yaml": REDRIVE_MANIFEST.format(port=free_port()),
                                        "schema.sql": SCHEMA, "rec.py": RECORDER})
    server = run_server(manifest, "--retry-delay", "0.05")  # on another port than the manifest's
    event_id = uid("redrive")
    assert post(server, {"type": "fail.always", "id": event_id, "data": {}}).status_code == 202
    wait_for(lambda: (delivery_status(server, event_id, "always-fails") or {}).get("status") == "dead",
             "the dead letter")
    result = run_cli("events", "--redrive", event_id, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "running faasemu up" in result.stdout, result.stdout
    received(tmp_path, "always-fails", event_id, count=2, timeout=5)


def test_redrive_of_an_unknown_event_is_a_usage_error(root: Path) -> None:
    result = run_cli("events", "--redrive", "no-such-event", cwd=root)
    assert result.returncode == 2
    assert "no-such-event" in result.stderr


def test_a_handler_failing_once_then_succeeding_ends_done(bus: Server, root: Path) -> None:
    event_id = uid("flaky")
    assert post(bus, {"type": "fail.once", "id": event_id, "data": {}}).status_code == 202
    wait_for(lambda: (delivery_status(bus, event_id, "flaky") or {}).get("status") == "done", "status done")
    delivery = delivery_status(bus, event_id, "flaky")
    assert delivery is not None and delivery["attempts"] == 2
    attempts = [c for c in calls(root, "flaky") if event_id_of(c) == event_id]
    assert len(attempts) == 2
    assert {a["event"]["id"] for a in attempts} == {event_id}


# --- emission and the sink -----------------------------------------------------------------------


def test_a_handler_emits_an_event_that_another_function_receives(bus: Server, root: Path) -> None:
    parent = uid("parent")
    assert post(bus, {"type": "emit.request", "id": parent, "data": {}}).status_code == 202
    child = wait_for(lambda: [c for c in calls(root, "child") if c["event"]["detail"] == {"parent": parent}],
                     "the emitted event to reach `child`")
    assert len(child) == 1
    assert child[0]["event"]["detail-type"] == "child.made"
    assert child[0]["event"]["source"] == "emitter"
    emitted = stored(bus, child[0]["event"]["id"])
    assert emitted is not None and emitted["type"] == "child.made"


def test_sink_calls_are_recorded_and_listed(bus: Server, root: Path) -> None:
    event_id = uid("mail")
    assert post(bus, {"type": "mail.request", "id": event_id, "data": {}}).status_code == 202
    received(root, "mailer", event_id)
    listed = httpx.get(f"{bus.url}/_faasemu/sink", timeout=10).json()["calls"]
    assert {"name": "email", "method": "POST", "body": {"to": "ada@example.com", "event": event_id}} in listed
    bus.wait_for_output("email")


# --- concurrency ---------------------------------------------------------------------------------


def test_concurrency_bounds_parallel_deliveries(bus: Server, root: Path) -> None:
    serial = [{"type": "slow.serial", "id": uid("serial"), "data": {"sleep": 0.12}} for _ in range(4)]
    parallel = [{"type": "slow.parallel", "id": uid("parallel"), "data": {"sleep": 0.4}} for _ in range(6)]
    response = post(bus, content=json.dumps(serial + parallel).encode(), content_type=BATCH)
    assert response.status_code == 202, response.text
    ids = {e["id"] for e in serial + parallel}
    done = wait_for(lambda: (lambda got: got if {event_id_of(c) for c in got} >= ids else [])(
        calls(root, "serial") + calls(root, "parallel")), "every slow delivery", timeout=20)
    serial_runs = [(c["started"], c["ended"]) for c in done if c["fn"] == "serial" and event_id_of(c) in ids]
    parallel_runs = [(c["started"], c["ended"]) for c in done if c["fn"] == "parallel" and event_id_of(c) in ids]
    assert len(serial_runs) == 4 and len(parallel_runs) == 6
    assert max_overlap(serial_runs) == 1  # concurrency: 1 -> one at a time
    assert 2 <= max_overlap(parallel_runs) <= 3  # concurrency: 3 -> never more than three


# --- live chaos ----------------------------------------------------------------------------------

CHAOS_MANIFEST = """\
state:
  schema: schema.sql
functions:
  rec:
    handler: rec.py:record
    events: ["live.*"]
    retries: 0
"""


@pytest.fixture
def chaos_project(tmp_path: Path) -> Path:
    return write_project(tmp_path, {"faasemu.yaml": CHAOS_MANIFEST, "schema.sql": SCHEMA, "rec.py": RECORDER})


def test_live_duplicates_deliver_each_event_twice_with_the_same_id(run_server, chaos_project: Path) -> None:
    server = run_server(chaos_project, "--duplicates", "1", "--seed", "5", "--retry-delay", "0.05")
    root = chaos_project.parent
    ids = [uid("dup") for _ in range(3)]
    response = post(server, content=json.dumps([{"type": "live.dup", "id": i, "data": {}} for i in ids]).encode(),
                    content_type=BATCH)
    assert response.status_code == 202, response.text
    for event_id in ids:
        copies = received(root, "rec", event_id, count=2)
        assert [c["event"]["id"] for c in copies] == [event_id, event_id]
        assert copies[0]["request_id"] != copies[1]["request_id"]  # a new attempt, the same event
    time.sleep(0.3)
    assert len(calls(root, "rec")) == 6  # twice each, not more
    out = server.wait_for_output("duplicate")
    assert "--seed 5" in out
    for event_id in ids:
        assert any(event_id in line and "duplicate" in line for line in out.splitlines()), out


def test_live_fail_fails_each_delivery_once_before_the_handler_then_delivers(run_server, chaos_project: Path) -> None:
    server = run_server(chaos_project, "--fail", "1", "--seed", "5", "--retry-delay", "0.05")
    root = chaos_project.parent
    ids = [uid("failed") for _ in range(3)]
    response = post(server, content=json.dumps([{"type": "live.fail", "id": i, "data": {}} for i in ids]).encode(),
                    content_type=BATCH)
    assert response.status_code == 202, response.text
    for event_id in ids:
        wait_for(lambda: (delivery_status(server, event_id, "rec") or {}).get("status") == "done",
                 f"{event_id} to be delivered despite retries: 0")
        assert delivery_status(server, event_id, "rec")["attempts"] == 2
    got = [event_id_of(c) for c in calls(root, "rec")]
    assert sorted(got) == sorted(ids)  # the handler ran exactly once per event
    out = server.output()
    for event_id in ids:
        assert any(event_id in line and "fail" in line for line in out.splitlines()), out
