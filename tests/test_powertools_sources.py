"""`event_source: s3 | dynamodb | kinesis | schedule` (issue 12): what `faasemu up` delivers passes
Powertools' strict Pydantic models for those sources, with the CloudEvent's data where AWS puts it
(runtimes/aws_sources.py). Real `up`, real workers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, write_project

pytest.importorskip("aws_lambda_powertools.utilities.parser", reason="needs aws-lambda-powertools[parser]")

HANDLERS = '''\
import base64
import json

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamModel,
    EventBridgeModel,
    KinesisDataStreamModel,
    S3Model,
)


def _record(context, what):
    with open(f"parsed-{context.function_name}.jsonl", "a") as out:
        out.write(json.dumps(what, default=float) + "\\n")  # DynamoDB numbers parse as Decimal


def upload(event, context):
    [record] = parse(event=event, model=S3Model).Records
    _record(context, {"bucket": record.s3.bucket.name, "key": record.s3.object.key, "size": record.s3.object.size,
                      "name": record.eventName})


def stream(event, context):
    [record] = parse(event=event, model=DynamoDBStreamModel).Records
    _record(context, {"name": record.eventName, "keys": record.dynamodb.Keys, "new": record.dynamodb.NewImage,
                      "old": record.dynamodb.OldImage})


def shard(event, context):
    [record] = parse(event=event, model=KinesisDataStreamModel).Records
    _record(context, {"key": record.kinesis.partitionKey,
                      "data": json.loads(base64.b64decode(event["Records"][0]["kinesis"]["data"]))})


def nightly(event, context):
    model = parse(event=event, model=EventBridgeModel)
    _record(context, {"detail_type": model.detail_type, "source": model.source, "detail": model.detail})
'''

MANIFEST = """\
functions:
  upload: {handler: models.py:upload, event_source: s3, events: [object.created], retries: 0, timeout: 30}
  stream: {handler: models.py:stream, event_source: dynamodb, events: [order.changed], retries: 0, timeout: 30}
  shard: {handler: models.py:shard, event_source: kinesis, events: [click], order_key: data.user, retries: 0,
          timeout: 30}
  nightly: {handler: models.py:nightly, event_source: schedule, events: [tick], retries: 0, timeout: 30}
"""


def parsed(root: Path, fn: str, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    path = root / f"parsed-{fn}.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{fn} parsed {count} events? none yet")


def test_s3_dynamodb_kinesis_and_schedule_deliveries_pass_powertools_models(tmp_path: Path, run_server) -> None:
    server: Server = run_server(write_project(tmp_path, {"faasemu.yaml": MANIFEST, "models.py": HANDLERS}))
    events = [
        {"type": "object.created", "data": {"bucket": "photos", "key": "2026/a b.jpg", "size": 77}},
        {"type": "order.changed", "data": {"keys": {"id": "o-1"}, "new": {"id": "o-1", "total": 3, "paid": True},
                                           "old": {"id": "o-1", "total": 3, "paid": False}}},
        {"type": "click", "data": {"user": "u-7", "page": "/"}},
        {"type": "tick"},
    ]
    response = httpx.post(f"{server.url}/_faasemu/events", content=json.dumps(events).encode(), timeout=20,
                          headers={"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 202, response.text
    assert parsed(tmp_path, "upload", 1) == [{"bucket": "photos", "key": "2026/a+b.jpg", "size": 77,
                                              "name": "ObjectCreated:Put"}]
    [change] = parsed(tmp_path, "stream", 1)
    assert change["name"] == "MODIFY" and change["keys"] == {"id": "o-1"}
    assert change["new"] == {"id": "o-1", "total": 3, "paid": True} and change["old"]["paid"] is False
    assert parsed(tmp_path, "shard", 1) == [{"key": "u-7", "data": {"user": "u-7", "page": "/"}}]
    assert parsed(tmp_path, "nightly", 1) == [{"detail_type": "Scheduled Event", "source": "aws.events",
                                               "detail": {}}]
    assert "ValidationError" not in server.output()


def test_a_dynamodb_stream_is_ordered_per_item(tmp_path: Path) -> None:
    from faasemu.project.manifest import load_manifest

    write_project(tmp_path, {"faasemu.yaml": MANIFEST, "models.py": HANDLERS})
    manifest = load_manifest(str(tmp_path / "faasemu.yaml"))
    assert manifest.function("stream").order_key == "data.keys"  # type: ignore[union-attr]
    assert manifest.function("upload").order_key is None  # type: ignore[union-attr]
