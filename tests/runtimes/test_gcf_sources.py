"""`runtime: gcf` with `event_source: pubsub | storage` (issue 12): what the function gets is what Eventarc
sends, read with Google's own `google-events` types (strict: an unknown field fails) and functions-framework's
legacy conversion for 1st-gen background functions. A real `faasemu replay`, real workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, write_project

pytestmark = pytest.mark.gcf  # run by the gcf family of .ci/run, where both packages are installed

HANDLERS = '''\
import base64
import json

import functions_framework
from google.events.cloud.pubsub_v1 import MessagePublishedData
from google.events.cloud.storage_v1 import StorageObjectData


def _record(name, what):
    with open(f"{name}.jsonl", "a") as out:
        out.write(json.dumps(what) + "\\n")


@functions_framework.cloud_event
def topic(cloud_event):
    message = MessagePublishedData.from_json(json.dumps(cloud_event.data)).message
    _record("topic", {"type": cloud_event["type"], "id": cloud_event["id"], "message_id": message.message_id,
                      "key": message.ordering_key, "data": json.loads(message.data)})


def legacy(data, context):
    _record("legacy", {"type": context.event_type, "data": json.loads(base64.b64decode(data["data"]))})


@functions_framework.cloud_event
def bucket(cloud_event):
    found = StorageObjectData.from_json(json.dumps(cloud_event.data))
    _record("bucket", {"type": cloud_event["type"], "subject": cloud_event["subject"], "bucket": found.bucket,
                       "name": found.name, "size": found.size})
'''

MANIFEST = """\
functions:
  topic: {handler: main.py:topic, runtime: gcf, signature: cloudevent, event_source: pubsub, events: [order.*],
          order_key: data.customer}
  legacy: {handler: main.py:legacy, runtime: gcf, signature: event, event_source: pubsub, events: [order.*]}
  bucket: {handler: main.py:bucket, runtime: gcf, signature: cloudevent, event_source: storage, events: [upload]}
"""
EVENTS = ('{"type": "order.placed", "id": "e-1", "data": {"customer": "c-9", "total": 5}}\n'
          '{"type": "upload", "id": "e-2", "data": {"bucket": "photos", "name": "2026/a.jpg", "size": 77}}\n')


def lines(root: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (root / f"{name}.jsonl").read_text().splitlines()]


def test_pubsub_and_storage_events_read_with_googles_own_types(tmp_path: Path) -> None:
    pytest.importorskip("functions_framework", reason="needs faasemu[gcf]")
    pytest.importorskip("google.events.cloud.pubsub_v1", reason="needs google-events")
    write_project(tmp_path, {"faasemu.yaml": MANIFEST, "main.py": HANDLERS, "events.jsonl": EVENTS})
    result = run_cli("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [published] = lines(tmp_path, "topic")
    assert published["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert published["id"] == published["message_id"] and published["message_id"].isdigit()
    assert published["key"] == "c-9" and published["data"] == {"customer": "c-9", "total": 5}
    assert lines(tmp_path, "legacy") == [{"type": "google.pubsub.topic.publish",
                                          "data": {"customer": "c-9", "total": 5}}]
    assert lines(tmp_path, "bucket") == [{"type": "google.cloud.storage.object.v1.finalized",
                                          "subject": "objects/2026/a.jpg", "bucket": "photos", "name": "2026/a.jpg",
                                          "size": 77}]
