"""SQS batches end to end (docs/delivery.md#batches-sqs): `faasemu up` and `faasemu replay` deliver up to
`batch_size` records per invocation; a failed invocation retries the whole batch, so records that
succeeded are processed again, unless `report_batch_item_failures` lets the handler name the failed ones.

Handlers count every record they process into $FAASEMU_STATE (`processed`) and log each invocation's
messageIds (`invocations`). The event whose data has `"poison": true` fails on its first receive.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
from conftest import run_cli, wait_for, write_project

HANDLERS = '''\
import json
import os
import sqlite3


def _db():
    return sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)


def _invoked(event):
    with _db() as db:
        db.execute("INSERT INTO invocations (ids) VALUES (?)",
                   (" ".join(r["messageId"] for r in event["Records"]),))


def _process(record):
    with _db() as db:
        db.execute("INSERT INTO processed (id, receive, attrs) VALUES (?, ?, ?)",
                   (record["messageId"], record["attributes"]["ApproximateReceiveCount"],
                    json.dumps(record["attributes"])))


def _poisoned(record):
    return (json.loads(record["body"]) or {}).get("poison") and (
        os.environ.get("ALWAYS") or record["attributes"]["ApproximateReceiveCount"] == "1")


def whole(event, context):
    """No partial responses: raising fails the whole batch."""
    _invoked(event)
    for record in event["Records"]:
        if _poisoned(record):
            raise RuntimeError(f"cannot process {record['messageId']}")
        _process(record)


def partial(event, context):
    _invoked(event)
    failures = []
    for record in event["Records"]:
        if _poisoned(record):
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            _process(record)
    return {"batchItemFailures": failures}


def malformed(event, context):
    """Processes everything, but on a first receive names a messageId that is not in the batch."""
    _invoked(event)
    for record in event["Records"]:
        _process(record)
    if any(r["attributes"]["ApproximateReceiveCount"] == "1" for r in event["Records"]):
        return {"batchItemFailures": [{"itemIdentifier": "no-such-message"}]}
    return None
'''

SCHEMA = """\
CREATE TABLE invocations (n INTEGER PRIMARY KEY AUTOINCREMENT, ids TEXT);
CREATE TABLE processed (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, receive TEXT, attrs TEXT);
"""


def manifest(handler: str, *, partial: bool = False, batch_size: int = 3, retries: int = 2,
             extra: str = "") -> str:
    return f"""\
state:
  schema: schema.sql
functions:
  jobs:
    handler: jobs.py:{handler}
    events: ["job.*"]
    event_source: sqs
    batch_size: {batch_size}
    report_batch_item_failures: {'true' if partial else 'false'}
    retries: {retries}
{extra}"""


EVENTS = [{"id": "a", "type": "job.created", "data": {"n": 1}},
          {"id": "b", "type": "job.created", "data": {"n": 2}},
          {"id": "c", "type": "job.created", "data": {"n": 3, "poison": True}}]


def project(root: Path, text: str, events: list[dict] = EVENTS) -> Path:
    return write_project(root, {"faasemu.yaml": text, "schema.sql": SCHEMA, "jobs.py": HANDLERS,
                                "events.jsonl": "".join(json.dumps(e) + "\n" for e in events)})


def query(root: Path, sql: str) -> list[tuple]:
    path = root / ".faasemu" / "state.db"
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def invocations(root: Path) -> list[str]:
    return [row[0] for row in query(root, "SELECT ids FROM invocations ORDER BY n")]


def counts(root: Path) -> dict[str, int]:
    return {row[0]: row[1] for row in query(root, "SELECT id, COUNT(*) FROM processed GROUP BY id")}


def replay(root: Path, *args: str):
    return run_cli("replay", "events.jsonl", "--retry-delay", "0", *args, cwd=root)


def post_all(url: str, events: list[dict]) -> None:
    """All events in one request (the batch format): they are committed and queued together."""
    answer = httpx.post(f"{url}/_faasemu/events", json=[{"specversion": "1.0", "source": "test", **e} for e in events],
                        headers={"content-type": "application/cloudevents-batch+json"}, timeout=30)
    assert answer.status_code == 202, answer.text


# -- replay ---------------------------------------------------------------------------------------


def test_replay_retries_the_whole_batch_when_the_handler_raises(tmp_path: Path) -> None:
    project(tmp_path, manifest("whole"))
    result = replay(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert invocations(tmp_path) == ["a b c", "a b c"]  # one invocation for the batch, then the batch again
    assert counts(tmp_path) == {"a": 2, "b": 2, "c": 1}  # the records that had succeeded ran twice
    rows = [line.split() for line in result.stdout.splitlines() if line[:1].isdigit() and "deliveries" not in line]
    assert [(row[1], row[4], row[5]) for row in rows] == [("a", "1,2", "ok"), ("b", "1,2", "ok"), ("c", "1,2", "ok")]
    assert "3 events, 3 deliveries: 3 ok" in result.stdout


def test_replay_retries_only_the_records_named_in_batch_item_failures(tmp_path: Path) -> None:
    project(tmp_path, manifest("partial", partial=True))
    result = replay(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert invocations(tmp_path) == ["a b c", "c"]
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 1}
    assert query(tmp_path, "SELECT receive FROM processed WHERE id = 'c'") == [("2",)]


def test_replay_without_partial_responses_ignores_the_answer(tmp_path: Path) -> None:
    project(tmp_path, manifest("partial", partial=False))
    result = replay(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert invocations(tmp_path) == ["a b c"]  # batchItemFailures is read only when enabled: c is lost
    assert counts(tmp_path) == {"a": 1, "b": 1}


def test_replay_malformed_answer_fails_the_whole_batch_and_says_why(tmp_path: Path) -> None:
    project(tmp_path, manifest("malformed", partial=True))
    result = replay(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert invocations(tmp_path) == ["a b c", "a b c"]
    assert counts(tmp_path) == {"a": 2, "b": 2, "c": 2}  # every record processed, yet all went again
    # with no retries the whole batch is dead-lettered, and the table says why
    project(tmp_path / "once", manifest("malformed", partial=True, retries=0))
    result = replay(tmp_path / "once")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 events, 3 deliveries: 0 ok, 3 dead-lettered" in result.stdout
    out = " ".join(result.stdout.split())
    assert "InvalidBatchResponse" in out
    assert "'no-such-message' is not a messageId of this batch (a, b, c)" in out


def test_replay_dead_letters_per_record(tmp_path: Path) -> None:
    project(tmp_path, manifest("partial", partial=True, retries=1, extra="    env: {ALWAYS: '1'}\n"))
    result = replay(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # a dead letter
    assert invocations(tmp_path) == ["a b c", "c"]  # the first try, then one retry of c alone
    assert "3 events, 3 deliveries: 2 ok, 1 dead-lettered" in result.stdout


def test_replay_batches_at_most_batch_size_and_one_record_per_message_id(tmp_path: Path) -> None:
    events: list[dict] = [*EVENTS[:2], {"id": "d", "type": "job.created", "data": {}},
                          {"id": "a", "type": "job.created"}, {"id": "e", "type": "job.created"}]
    project(tmp_path, manifest("whole", batch_size=2), events)
    result = replay(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # a b | d a | e: a batch holds one record per id, so the second `a` may join `d` (a is not in that batch)
    assert invocations(tmp_path) == ["a b", "d a", "e"]
    assert query(tmp_path, "SELECT receive FROM processed WHERE id = 'a' ORDER BY n") == [("1",), ("2",)]


def test_replay_fifo_records_carry_group_and_sequence(tmp_path: Path) -> None:
    events = [{"id": "x1", "type": "job.created", "data": {"order": "o-1"}},
              {"id": "x2", "type": "job.created", "data": {"order": "o-2"}},
              {"id": "x3", "type": "job.created", "data": {}}]
    project(tmp_path, manifest("whole", batch_size=10, extra="    order_key: data.order\n"), events)
    result = replay(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert invocations(tmp_path) == ["x1 x2 x3"]
    attrs = [json.loads(row[0]) for row in query(tmp_path, "SELECT attrs FROM processed ORDER BY n")]
    assert [a["MessageGroupId"] for a in attrs] == ["o-1", "o-2", "x3"]
    assert [a["MessageDeduplicationId"] for a in attrs] == ["x1", "x2", "x3"]
    numbers = [a["SequenceNumber"] for a in attrs]
    assert all(len(n) == 20 for n in numbers) and numbers == sorted(numbers) and len(set(numbers)) == 3


# -- up -------------------------------------------------------------------------------------------


def test_up_retries_the_whole_batch_when_the_handler_raises(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path, manifest("whole")), "--retry-delay", "0.1")
    post_all(server.url, EVENTS)
    assert wait_for(lambda: counts(tmp_path).get("c") == 1), server.output()
    assert invocations(tmp_path) == ["a b c", "a b c"]
    assert counts(tmp_path) == {"a": 2, "b": 2, "c": 1}
    out = server.wait_for_output("3 records: a #2 ok, b #2 ok, c #2 ok")
    assert "3 records: a #1 retry (in 0.1 s), b #1 retry (in 0.1 s), c #1 retry" in out
    assert "RuntimeError: cannot process c" in out


def test_up_retries_only_the_failed_records_with_partial_responses(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path, manifest("partial", partial=True)), "--retry-delay", "0.1")
    post_all(server.url, EVENTS)
    assert wait_for(lambda: counts(tmp_path).get("c") == 1), server.output()
    assert invocations(tmp_path) == ["a b c", "c"]
    assert counts(tmp_path) == {"a": 1, "b": 1, "c": 1}
    server.wait_for_output("1 record: c #2 ok")


def test_up_malformed_answer_fails_the_whole_batch_and_says_why(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path, manifest("malformed", partial=True)), "--retry-delay", "0.1")
    post_all(server.url, EVENTS)
    assert wait_for(lambda: len(invocations(tmp_path)) == 2), server.output()
    out = server.wait_for_output("is not a messageId of this batch")
    assert "InvalidBatchResponse" in out and "Lambda treats the whole batch as failed" in out
    assert wait_for(lambda: counts(tmp_path) == {"a": 2, "b": 2, "c": 2}), counts(tmp_path)
    answer = httpx.get(f"{server.url}/_faasemu/events", params={"limit": 100}, timeout=10).json()
    assert answer  # the log holds the events, every delivery settled below
    assert wait_for(lambda: "pending" not in json.dumps(
        httpx.get(f"{server.url}/_faasemu/events", params={"limit": 100}, timeout=10).json()))


def test_up_dead_letters_per_record(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path, manifest("partial", partial=True, retries=1,
                                                   extra="    env: {ALWAYS: '1'}\n")), "--retry-delay", "0.1")
    post_all(server.url, EVENTS)
    server.wait_for_output("dead letter", timeout=30)
    dead = run_cli("events", "--dead", cwd=tmp_path)
    assert " c " in f" {dead.stdout} " and " a " not in f" {dead.stdout} ", dead.stdout
    assert invocations(tmp_path) == ["a b c", "c"]
