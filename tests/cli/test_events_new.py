"""`faasemu events new TYPE` prints realistic platform events; each is parsed by the model AWS's own
Powertools parser (Pydantic) uses for that event source, so a shape that drifted from AWS's would
fail here. `--jsonl` appends the CloudEvent that faasemu delivers as that shape, and a replay of that
file gives the handler the same message. Real `faasemu` processes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    APIGatewayProxyEventV2Model,
    DynamoDBStreamModel,
    EventBridgeModel,
    KinesisDataStreamModel,
    S3Model,
    SnsModel,
    SqsModel,
)
from conftest import run_cli, write_project

MODELS: dict[str, Any] = {
    "sqs": SqsModel, "sns": SnsModel, "eventbridge": EventBridgeModel, "apigw-v1": APIGatewayProxyEventModel,
    "apigw-v2": APIGatewayProxyEventV2Model, "s3": S3Model, "schedule": EventBridgeModel,
    "dynamodb": DynamoDBStreamModel, "kinesis": KinesisDataStreamModel,
}


def new(*args: str, cwd: Path | None = None) -> Any:
    result = run_cli("events", "new", *args, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_each_aws_event_parses_with_powertools_model(kind: str) -> None:
    event = new(kind, "--data", '{"order": "o-7"}')
    parse(event=event, model=MODELS[kind])


def test_the_fields_people_change_land_where_the_platform_puts_them() -> None:
    s3 = parse(event=new("s3", "--bucket", "photos", "--key", "2026/a b.jpg", "--size", "77"), model=S3Model)
    record = s3.Records[0]
    assert (record.s3.bucket.name, record.s3.object.key, record.s3.object.size) == ("photos", "2026/a+b.jpg", 77)
    sqs = parse(event=new("sqs", "--data", '{"n": 1}', "--function", "orders"), model=SqsModel)
    assert json.loads(sqs.Records[0].body) == {"n": 1} and sqs.Records[0].eventSourceARN.endswith(":orders")
    v2 = parse(event=new("apigw-v2", "--method", "get", "--path", "/items/3?x=1"), model=APIGatewayProxyEventV2Model)
    assert (v2.requestContext.http.method, v2.rawPath, v2.queryStringParameters) == ("GET", "/items/3", {"x": "1"})
    scheduled = new("schedule", "--function", "nightly")
    assert scheduled["detail-type"] == "Scheduled Event" and scheduled["resources"][0].endswith("rule/nightly-schedule")


def test_without_a_type_it_lists_them_and_an_unknown_one_names_the_choices() -> None:
    listing = run_cli("events", "new")
    assert listing.returncode == 0 and "sqs" in listing.stdout and "s3" in listing.stdout, listing.stdout
    wrong = run_cli("events", "new", "kafka")
    assert wrong.returncode == 2 and "kafka" in wrong.stderr and "sqs, sns" in wrong.stderr, wrong.stderr


def test_jsonl_appends_the_cloudevent_that_replay_delivers_as_that_shape(tmp_path: Path) -> None:
    write_project(tmp_path, {"faasemu.yaml": """\
        state:
          dir: state
        functions:
          consume:
            handler: app.py:handler
            events: [com.example.*]
            event_source: sqs
    """, "app.py": """\
import json, os


def handler(event, context):
    with open(os.path.join(os.environ["FAASEMU_STATE"], "got.json"), "w") as file:
        json.dump(event, file)
"""})
    (tmp_path / "state").mkdir()
    printed = new("sqs", "--data", '{"order": "o-9"}', "--function", "consume")
    for _ in range(2):
        result = run_cli("events", "new", "sqs", "--data", '{"order": "o-9"}', "--jsonl", "events.jsonl", cwd=tmp_path)
        assert result.returncode == 0 and "appended event" in result.stderr, result.stderr
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["data"] == {"order": "o-9"} for line in lines)
    (tmp_path / "events.jsonl").write_text(lines[0] + "\n")
    replayed = run_cli("replay", "events.jsonl", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    got = json.loads((tmp_path / "state" / "got.json").read_text())["Records"][0]
    assert got["body"] == printed["Records"][0]["body"] and got["eventSource"] == "aws:sqs"
    refused = run_cli("events", "new", "apigw-v1", "--jsonl", "events.jsonl", cwd=tmp_path)
    assert refused.returncode == 2 and "--jsonl works for" in refused.stderr, refused.stderr


@pytest.mark.parametrize("kind", ["pubsub", "storage"])
def test_google_events_parse_with_googles_own_types(kind: str) -> None:
    """Pub/Sub and Cloud Storage as Eventarc sends them: `google-events`' types read the data strictly (an
    unknown field fails) and the CloudEvents SDK reads the envelope."""
    from cloudevents.v1.http import from_dict
    from google.events.cloud.pubsub_v1 import MessagePublishedData
    from google.events.cloud.storage_v1 import StorageObjectData

    event = new(kind, "--data", '{"order": "o-7"}', "--bucket", "photos", "--key", "a b.jpg")
    envelope = from_dict(event)
    if kind == "pubsub":
        message = MessagePublishedData.from_json(json.dumps(envelope.data)).message
        assert json.loads(message.data) == {"order": "o-7"} and message.message_id == envelope["id"]
        assert envelope["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    else:
        found = StorageObjectData.from_json(json.dumps(envelope.data))
        assert (found.bucket, found.name, envelope["subject"]) == ("photos", "a b.jpg", "objects/a b.jpg")


def test_firestore_events_parse_with_googles_own_types_in_both_encodings() -> None:
    """A Firestore change as Eventarc sends it: google-events' `DocumentEventData` reads the JSON form strictly
    (an unknown field fails) and deserializes the protobuf form (Firestore's default) to the same message."""
    from cloudevents.v1.http import from_dict
    from google.events.cloud.firestore_v1 import DocumentEventData

    change = {"old": {"name": "Ada", "visits": 1, "tags": ["a"]},
              "new": {"name": "Ada", "visits": 2, "score": -1.5, "tags": [], "address": {"city": "London"},
                      "deleted": None, "admin": False}}
    args = ("firestore", "--data", json.dumps(change), "--document", "users/ada/orders/o-1", "--type", "updated")
    event = new(*args)
    envelope = from_dict(event)
    assert envelope["type"] == "google.cloud.firestore.document.v1.updated"
    assert (envelope["subject"], envelope["document"]) == ("documents/users/ada/orders/o-1", "users/ada/orders/o-1")
    assert envelope["source"] == "//firestore.googleapis.com/projects/faasemu-local/databases/(default)"
    assert {envelope["database"], envelope["namespace"]} == {"(default)"} and envelope["location"]
    data = DocumentEventData.from_json(json.dumps(envelope.data))
    assert data.value.name.endswith("/documents/users/ada/orders/o-1")
    fields = data.value.fields
    assert fields["visits"].integer_value == 2 and fields["score"].double_value == -1.5
    assert fields["address"].map_value.fields["city"].string_value == "London" and not fields["admin"].boolean_value
    assert "deleted" in fields and fields["deleted"]._pb.WhichOneof("value_type") == "null_value"
    assert data.old_value.fields["visits"].integer_value == 1
    assert sorted(data.update_mask.field_paths) == ["address", "admin", "deleted", "score", "tags", "visits"]
    assert data.old_value.update_time.timestamp() < data.value.update_time.timestamp()
    binary = new(*args, "--protobuf")
    assert binary["datacontenttype"] == "application/protobuf" and "data" not in binary
    decoded = DocumentEventData.deserialize(base64.b64decode(binary["data_base64"]))
    assert decoded.value.update_time.strftime("%Y-%m-%dT%H:%M:%S") == binary["time"][:19]
    for message in (decoded, data):  # two commands, two times: the rest must be the same message
        for document in (message.value, message.old_value):
            document.create_time, document.update_time = None, None
    assert decoded == data and decoded.value.fields["score"].double_value == -1.5
    created = DocumentEventData.from_json(json.dumps(new("firestore", "--data", '{"n": 1}')["data"]))
    assert created.value.fields["n"].integer_value == 1 and not created.old_value.name and not created.update_mask
    deleted = new("firestore", "--type", "deleted", "--protobuf", "--data", '{"n": 1}')
    gone = DocumentEventData.deserialize(base64.b64decode(deleted["data_base64"]))
    assert gone.old_value.fields["n"].integer_value == 1 and not gone.value.name


def test_firestore_refuses_a_collection_path() -> None:
    result = run_cli("events", "new", "firestore", "--document", "users")
    assert result.returncode == 2 and "document path 'users' must be collection/document" in result.stderr


def test_azure_events_are_what_the_azure_runtime_delivers() -> None:
    """Event Grid's schema (every field Event Grid sends), a BlobCreated event naming its container and blob,
    and a queue message with the trigger metadata the host passes."""
    fields = {"id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion", "metadataVersion"}
    grid = new("eventgrid", "--data", '{"order": "o-7"}', "--type", "order.placed")
    assert set(grid) == fields and grid["eventType"] == "order.placed" and grid["data"] == {"order": "o-7"}
    blob = new("blob", "--bucket", "photos", "--key", "2026/a.jpg", "--size", "77")
    assert set(blob) == fields and blob["eventType"] == "Microsoft.Storage.BlobCreated"
    assert blob["subject"] == "/blobServices/default/containers/photos/blobs/2026/a.jpg"
    assert blob["data"]["contentLength"] == 77 and blob["data"]["url"].endswith("/photos/2026/a.jpg")
    message = new("queue", "--data", '{"order": "o-7"}')
    assert json.loads(message["body"]) == {"order": "o-7"} and message["metadata"]["DequeueCount"] == 1
    assert message["metadata"]["QueueTrigger"] == message["body"]
