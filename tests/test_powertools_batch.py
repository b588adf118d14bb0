"""The real AWS Lambda Powertools batch utility against faasemu's SQS batches (issue 10, item 4):
`BatchProcessor` + `process_partial_response` return `batchItemFailures`, and only the failed record
is delivered again, under `faasemu up` and `faasemu replay` (docs/delivery.md#batches-sqs). A FIFO
queue (`order_key`) works with `SqsFifoPartialProcessor`, and its records pass Powertools' strict
`SqsModel`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from conftest import run_cli, wait_for, write_project

pytest.importorskip("aws_lambda_powertools.utilities.batch", reason="needs aws-lambda-powertools")

HANDLERS = '''\
import json
import os
import sqlite3

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
fifo = SqsFifoPartialProcessor()


def _db():
    return sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)


def record_handler(record: SQSRecord):
    body = json.loads(record.body)
    if body.get("poison") and record.attributes.approximate_receive_count == "1":
        raise ValueError(f"poisoned {record.message_id}")
    with _db() as db:
        db.execute("INSERT INTO processed (id, receive, grp) VALUES (?, ?, ?)",
                   (record.message_id, record.attributes.approximate_receive_count,
                    record.attributes.message_group_id))


def handler(event, context):
    with _db() as db:
        db.execute("INSERT INTO invocations (ids) VALUES (?)", (" ".join(r["messageId"] for r in event["Records"]),))
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


def fifo_handler(event, context):
    from aws_lambda_powertools.utilities.parser import parse
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    parse(event=event, model=SqsModel)  # strict: the FIFO attributes must be where SQS puts them
    with _db() as db:
        db.execute("INSERT INTO invocations (ids) VALUES (?)", (" ".join(r["messageId"] for r in event["Records"]),))
    return process_partial_response(event=event, record_handler=record_handler, processor=fifo, context=context)
'''

SCHEMA = """\
CREATE TABLE invocations (n INTEGER PRIMARY KEY AUTOINCREMENT, ids TEXT);
CREATE TABLE processed (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, receive TEXT, grp TEXT);
"""

MANIFEST = """\
state:
  schema: schema.sql
functions:
  jobs:
    handler: jobs.py:{handler}
    events: ["job.*"]
    event_source: sqs
    batch_size: 10
    report_batch_item_failures: true
{extra}"""

EVENTS = [{"id": "a", "type": "job.created", "data": {"n": 1, "order": "g1"}},
          {"id": "b", "type": "job.created", "data": {"n": 2, "poison": True, "order": "g2"}},
          {"id": "c", "type": "job.created", "data": {"n": 3, "order": "g3"}}]


def project(root: Path, handler: str = "handler", extra: str = "") -> Path:
    return write_project(root, {"faasemu.yaml": MANIFEST.format(handler=handler, extra=extra), "schema.sql": SCHEMA,
                                "jobs.py": HANDLERS, "events.jsonl": "".join(json.dumps(e) + "\n" for e in EVENTS)})


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


def processed(root: Path) -> list[tuple]:
    return query(root, "SELECT id, receive FROM processed ORDER BY n")


def test_replay_retries_only_the_record_powertools_reports(tmp_path: Path) -> None:
    project(tmp_path)
    result = run_cli("replay", "events.jsonl", "--retry-delay", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert invocations(tmp_path) == ["a b c", "b"]
    assert processed(tmp_path) == [("a", "1"), ("c", "1"), ("b", "2")]  # each record processed once


def test_up_retries_only_the_record_powertools_reports(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path), "--retry-delay", "0.1")
    batch = [{"specversion": "1.0", "source": "test", **e} for e in EVENTS]
    answer = httpx.post(f"{server.url}/_faasemu/events", json=batch,
                        headers={"content-type": "application/cloudevents-batch+json"}, timeout=30)
    assert answer.status_code == 202, answer.text
    assert wait_for(lambda: len(processed(tmp_path)) == 3), server.output()
    assert invocations(tmp_path) == ["a b c", "b"]
    assert processed(tmp_path) == [("a", "1"), ("c", "1"), ("b", "2")]
    server.wait_for_output("1 record: b #2 ok")


def test_fifo_processor_stops_at_the_first_failure(tmp_path: Path) -> None:
    """SqsFifoPartialProcessor reports the failed record and every one after it (FIFO order)."""
    project(tmp_path, "fifo_handler", "    order_key: data.order\n")
    result = run_cli("replay", "events.jsonl", "--retry-delay", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert invocations(tmp_path) == ["a b c", "b c"]
    assert processed(tmp_path) == [("a", "1"), ("b", "2"), ("c", "2")]
    assert [row[0] for row in query(tmp_path, "SELECT grp FROM processed ORDER BY n")] == ["g1", "g2", "g3"]
