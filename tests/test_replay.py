"""`faasemu replay EVENTS.jsonl` as a user runs it: the table and summary, exit codes, the defaults of
docs/delivery.md#events-files, seeded chaos that reproduces, effects listed but not delivered, and `--target URL`.
Handlers record (function, event id, attempt) into $FAASEMU_STATE, in the order they ran.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from conftest import run_cli, write_project

RECORDER = '''\
import json
import os
import sqlite3
import urllib.request


def _save(fn, event_id, attempt, event):
    with sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30) as db:
        db.execute("INSERT INTO calls (fn, event_id, attempt, event) VALUES (?, ?, ?, ?)",
                   (fn, event_id, attempt, json.dumps(event)))


def record_sqs(event, context):
    record = event["Records"][0]
    _save(context.function_name, record["messageId"], record["attributes"]["ApproximateReceiveCount"], event)


def record(event, context):
    _save(context.function_name, event["id"], None, event)


def fail(event, context):
    _save(context.function_name, event["id"], None, event)
    raise RuntimeError("this handler always fails")


def _post(url, payload):
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"content-type": "application/json"},
                                     method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def emit(event, context):
    _post(os.environ["FAASEMU_EVENTS_URL"], {"type": "child.made", "data": {"parent": event["id"]}})
    _post(os.environ["FAASEMU_SINK_URL"] + "/email", {"to": "ada@example.com", "parent": event["id"]})
    _save(context.function_name, event["id"], None, event)
'''

SCHEMA = "CREATE TABLE calls (n INTEGER PRIMARY KEY AUTOINCREMENT, fn TEXT, event_id TEXT, attempt TEXT, event TEXT);\n"

# b-second comes first in the manifest: canonical order is manifest order, not alphabetical
MANIFEST = """\
state:
  schema: schema.sql
functions:
  b-second:
    handler: rec.py:record_sqs
    events: ["order.*"]
    event_source: sqs
    retries: 0
  a-first:
    handler: rec.py:record_sqs
    events: [order.created]
    event_source: sqs
    retries: 0
  bridge:
    handler: rec.py:record
    events: ["note.*"]
  broken:
    handler: rec.py:fail
    events: [fail.now]
    retries: 1
  emitter:
    handler: rec.py:emit
    events: [emit.request]
  child:
    handler: rec.py:record
    events: [child.made]
"""


def project(root: Path, events: str) -> Path:
    return write_project(root, {"faasemu.yaml": MANIFEST, "schema.sql": SCHEMA, "rec.py": RECORDER,
                                "events.jsonl": events})


def calls(root: Path) -> list[tuple[str, str, str | None]]:
    path = root / ".faasemu" / "state.db"
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute("SELECT fn, event_id, attempt FROM calls ORDER BY n").fetchall()
    finally:
        db.close()


def events_of(root: Path, fn: str) -> list[dict]:
    db = sqlite3.connect(root / ".faasemu" / "state.db", timeout=10)
    try:
        return [json.loads(r[0]) for r in db.execute("SELECT event FROM calls WHERE fn = ? ORDER BY n", (fn,))]
    finally:
        db.close()


def table_rows(text: str) -> list[list[str]]:
    """The rows of replay's delivery table, split on whitespace (`#`, event, type, function, ...)."""
    rows = []
    for line in text.splitlines():
        cells = line.split()
        if cells[:1] and cells[0].isdigit() and "deliveries:" not in line:
            rows.append(cells)
    return rows


def lines(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" if not isinstance(o, str) else o + "\n" for o in objects)


ORDERS = lines(
    {"type": "order.created", "data": {"order": 1}},
    {"type": "order.paid", "data": {"order": 1}},
    {"type": "order.created", "data": {"order": 2}},
)


def test_replay_delivers_in_canonical_order_with_a_table_and_a_summary(tmp_path: Path) -> None:
    project(tmp_path, ORDERS)
    result = run_cli("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # file order, and for one event the manifest's order of functions
    assert calls(tmp_path) == [("b-second", "events-1", "1"), ("a-first", "events-1", "1"),
                               ("b-second", "events-2", "1"), ("b-second", "events-3", "1"),
                               ("a-first", "events-3", "1")]
    out = result.stdout
    for column in ("event", "type", "function", "attempts", "status"):
        assert column in out.splitlines()[0]
    assert [(r[1], r[2], r[3], r[5]) for r in table_rows(out)] == [
        ("events-1", "order.created", "b-second", "ok"), ("events-1", "order.created", "a-first", "ok"),
        ("events-2", "order.paid", "b-second", "ok"), ("events-3", "order.created", "b-second", "ok"),
        ("events-3", "order.created", "a-first", "ok")]
    assert "3 events, 5 deliveries: 5 ok, 0 dead-lettered" in out


def test_replay_never_resets_the_state_file(tmp_path: Path) -> None:
    project(tmp_path, ORDERS)
    assert run_cli("replay", "events.jsonl", cwd=tmp_path).returncode == 0
    assert run_cli("replay", "events.jsonl", cwd=tmp_path).returncode == 0
    assert len(calls(tmp_path)) == 10  # docs/architecture.md#the-projects-folder: `replay` never resets $FAASEMU_STATE


def test_default_ids_times_and_source_follow_the_file(tmp_path: Path) -> None:
    # data is an object: EventBridge refuses a number as detail (issue 8)
    project(tmp_path, lines({"type": "note.a", "data": {"n": 1}}, "", {"type": "note.b", "id": "mine", "source": "me"},
                            "   ", {"type": "note.c"}))
    result = run_cli("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c[1] for c in calls(tmp_path)] == ["events-1", "mine", "events-5"]  # physical line numbers
    got = events_of(tmp_path, "bridge")
    assert [e["time"] for e in got] == ["1970-01-01T00:00:01Z", "1970-01-01T00:00:03Z", "1970-01-01T00:00:05Z"]
    assert [e["source"] for e in got] == ["faasemu", "me", "faasemu"]
    assert [e["detail-type"] for e in got] == ["note.a", "note.b", "note.c"]


def test_a_dead_lettered_delivery_exits_1(tmp_path: Path) -> None:
    project(tmp_path, lines({"type": "fail.now", "id": "doomed"}, {"type": "note.ok", "id": "fine"}))
    result = run_cli("replay", "events.jsonl", "--retry-delay", "0.01", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if "doomed" in line)
    assert "broken" in row and "dead" in row and "1,2" in row  # the delivery and `retries: 1`
    assert "always fails" in result.stdout
    assert "1 dead-lettered" in result.stdout
    assert calls(tmp_path) == [("broken", "doomed", None), ("broken", "doomed", None), ("bridge", "fine", None)]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [('{"type": "order.created", "data": ', "not valid JSON"),
     ('{"data": {"order": 3}}', "'type'"),
     ('["order.created"]', "JSON object")],
    ids=["broken-json", "no-type", "not-an-object"],
)
def test_a_malformed_line_exits_2_naming_file_and_line_and_delivers_nothing(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    project(tmp_path, ORDERS + "\n" + bad_line + "\n")
    result = run_cli("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "events.jsonl:5" in result.stderr
    assert reason in result.stderr
    assert calls(tmp_path) == []


def test_a_missing_events_file_exits_2(tmp_path: Path) -> None:
    project(tmp_path, ORDERS)
    result = run_cli("replay", "nope.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.jsonl" in result.stderr


MANY = lines(*({"type": "order.created" if i % 2 == 0 else "order.paid", "data": {"i": i}} for i in range(10)))
CHAOS = ["--duplicates", "0.5", "--shuffle", "3", "--lost-ack", "0.2", "--fail", "0.2", "--seed", "7"]


def test_seeded_chaos_is_tagged_printed_and_reproducible(tmp_path: Path) -> None:
    project(tmp_path, MANY)
    first = run_cli("replay", "events.jsonl", *CHAOS, "--retry-delay", "0.01", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "seed 7" in out
    reproduce = out.split("reproduce:", 1)[1].strip().splitlines()[0]
    assert reproduce.startswith("faasemu replay events.jsonl")
    for flag in ("--duplicates 0.5", "--shuffle 3", "--lost-ack 0.2", "--fail 0.2", "--seed 7"):
        assert flag in reproduce
    for tag in ("duplicate", "moved", "fail", "lost-ack", "redelivery"):
        assert tag in out, f"no delivery tagged {tag!r}"
    first_order = calls(tmp_path)

    # every event reaches each of its subscribers at least once, even with `retries: 0`
    expected = {("b-second", f"events-{i + 1}") for i in range(10)}
    expected |= {("a-first", f"events-{i + 1}") for i in range(0, 10, 2)}
    assert {(fn, event_id) for fn, event_id, _ in first_order} == expected
    assert len(first_order) > len(expected)  # duplicates and lost acks ran handlers again

    # the printed command, run on a fresh state, delivers in exactly the same order
    (tmp_path / ".faasemu" / "state.db").unlink()
    second = run_cli(*shlex.split(reproduce)[1:], cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert calls(tmp_path) == first_order

    def without_durations(text: str) -> list[list[str]]:
        return [row[:6] + row[8:] for row in table_rows(text)]

    assert without_durations(second.stdout) == without_durations(out)


def test_an_injected_failure_never_loses_an_event(tmp_path: Path) -> None:
    project(tmp_path, ORDERS)
    result = run_cli("replay", "events.jsonl", "--fail", "1", "--seed", "3", "--retry-delay", "0.01", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    got = calls(tmp_path)
    # each delivery: one injected failure before the handler, then the redelivery ran it, once
    assert sorted((fn, event_id) for fn, event_id, _ in got) == sorted([
        ("b-second", "events-1"), ("a-first", "events-1"), ("b-second", "events-2"),
        ("b-second", "events-3"), ("a-first", "events-3")])
    assert {attempt for _, _, attempt in got} == {"2"}  # the failed attempt counts: SQS received it twice
    assert result.stdout.count("fail*") == 5
    assert result.stdout.count("redelivery") == 5
    assert "0 dead-lettered" in result.stdout


def test_emitted_events_and_sink_calls_are_listed_not_delivered(tmp_path: Path) -> None:
    project(tmp_path, lines({"type": "emit.request", "id": "parent-1"}))
    result = run_cli("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path) == [("emitter", "parent-1", None)]  # `child` never ran
    emitted = [line for line in result.stdout.splitlines() if line.startswith("emitted")]
    assert len(emitted) == 1 and "child.made" in emitted[0] and "parent-1" in emitted[0]
    sink = [line for line in result.stdout.splitlines() if line.startswith("sink")]
    assert len(sink) == 1 and "email" in sink[0] and "ada@example.com" in sink[0]


def test_target_posts_to_a_running_up_whose_handlers_receive_them(run_server, tmp_path: Path) -> None:
    manifest = project(tmp_path, ORDERS)
    server = run_server(manifest, "--retry-delay", "0.05")
    result = run_cli("replay", "events.jsonl", "--target", server.url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("202") == 3
    expected = [("b-second", "events-1"), ("a-first", "events-1"), ("b-second", "events-2"),
                ("b-second", "events-3"), ("a-first", "events-3")]
    deadline = time.monotonic() + 15
    while sorted((fn, e) for fn, e, _ in calls(tmp_path)) != sorted(expected) and time.monotonic() < deadline:
        time.sleep(0.03)
    assert sorted((fn, e) for fn, e, _ in calls(tmp_path)) == sorted(expected)
    stored = httpx.get(f"{server.url}/_faasemu/events", timeout=10).json()["events"]
    assert [e["id"] for e in stored] == ["events-1", "events-2", "events-3"]

    # with --duplicates 1 every event is posted again with the same id
    again = run_cli("replay", "events.jsonl", "--target", server.url, "--duplicates", "1", "--seed", "2",
                    cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "seed 2" in again.stdout and "duplicate" in again.stdout
    deadline = time.monotonic() + 15
    while len(calls(tmp_path)) < 15 and time.monotonic() < deadline:
        time.sleep(0.03)
    assert sorted((fn, e) for fn, e, _ in calls(tmp_path)) == sorted(expected * 3)
