"""PURE: the Lambda events of AWS's other event sources, built from a CloudEvent: S3 notifications,
DynamoDB Streams records, Kinesis records and EventBridge schedules (`event_source:` s3, dynamodb,
kinesis, schedule; docs/delivery.md#aws-event-sources).

What the CloudEvent's `data` holds for each, and what the handler then gets (checked against
Powertools' Pydantic models in tests/test_powertools.py, and the shapes AWS documents):

- `s3`: `{"bucket", "key", "size"?, "eventName"?}` (default `ObjectCreated:Put`) -> one S3 notification
  record, event version 2.1, the key URL-encoded as S3 sends it. AWS documents S3 notifications as
  delivered at least once; a duplicate carries the same `sequencer` and request id (both from the event id).
- `dynamodb`: `{"keys": {...}, "new"?: {...}, "old"?: {...}}` (plain JSON rows; `eventName` INSERT,
  MODIFY or REMOVE follows from which images there are) -> one Streams record, the rows marshalled
  to AttributeValues (`{"S": ...}`, `{"N": "1"}` ...), `StreamViewType` NEW_AND_OLD_IMAGES. Streams are
  ordered per item: the function's implicit `order_key` is `data.keys` (project/manifest.py).
- `kinesis`: any data -> one Kinesis record, the data's JSON text base64-encoded, `partitionKey` the
  value at the function's `order_key` (records of one partition key are ordered), else the event's
  `subject`, else its id.
- `schedule`: an EventBridge scheduled rule's `Scheduled Event` (source `aws.events`, the rule in
  `resources`), `detail` the data or `{}`.

Sequence numbers and ids derive from the event (its id, time and, when known, position), so a
redelivery of one record carries the same ones, as a stream's retry does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from faasemu.runtimes.aws_common import ACCOUNT


def _digest(*parts: object) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def _uuid(*parts: object) -> str:
    text = _digest(*parts)
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-8{text[17:20]}-{text[20:32]}"


def _iso_millis(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def s3_event(ce: dict[str, Any], data: Any, function: str, region: str, when: datetime) -> dict[str, Any]:
    body = data if isinstance(data, dict) else {}
    bucket = str(body.get("bucket") or "my-bucket")
    key = str(body.get("key") or ce.get("subject") or "uploads/object")
    size = body.get("size") if isinstance(body.get("size"), int) else 0
    etag = _digest("etag", bucket, key, size)[:32]
    request = _digest("request", ce["id"])
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventTime": _iso_millis(when),
        "eventName": str(body.get("eventName") or "ObjectCreated:Put"),
        "userIdentity": {"principalId": "AWS:AIDAFAASEMUEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": request[:16].upper(), "x-amz-id-2": request + request[:16]},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": f"{function}-notification",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKEXAMPLE"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": size, "eTag": etag,
                       "sequencer": f"{int(when.timestamp() * 1000):012X}{request[:4].upper()}"},
        },
    }]}


def attribute_value(value: Any) -> dict[str, Any]:
    """A JSON value as DynamoDB's AttributeValue, as boto3's TypeSerializer writes it for JSON types."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": json.dumps(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [attribute_value(item) for item in value]}
    if isinstance(value, dict):
        return {"M": {str(k): attribute_value(v) for k, v in value.items()}}
    return {"S": str(value)}


def dynamodb_event(ce: dict[str, Any], data: Any, function: str, region: str, when: datetime,
                   sequence: int | None) -> dict[str, Any]:
    body = data if isinstance(data, dict) else {}
    found = body.get("keys")
    keys: dict[str, Any] = found if isinstance(found, dict) else {}
    new, old = body.get("new"), body.get("old")
    name = "MODIFY" if new is not None and old is not None else ("REMOVE" if old is not None else "INSERT")
    table = str(body.get("table") or function)
    record: dict[str, Any] = {
        "ApproximateCreationDateTime": int(when.timestamp()),
        "Keys": {k: attribute_value(v) for k, v in keys.items()},
        "SequenceNumber": str((sequence or 1) * 100 + int(_digest("seq", ce["id"])[:2], 16)).rjust(21, "0"),
        "SizeBytes": len(json.dumps(body)), "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if isinstance(new, dict):
        record["NewImage"] = {k: attribute_value(v) for k, v in new.items()}
    if isinstance(old, dict):
        record["OldImage"] = {k: attribute_value(v) for k, v in old.items()}
    stream = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"
    return {"Records": [{
        "eventID": _digest("dynamodb", ce["id"])[:32], "eventName": name, "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": region,
        "eventSourceARN": f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}/stream/{stream}",
        "dynamodb": record,
    }]}


def kinesis_event(ce: dict[str, Any], text: str, partition_key: str, function: str, region: str,
                  when: datetime, sequence: int | None) -> dict[str, Any]:
    number = f"4959{(sequence or 1):040d}{int(_digest('kinesis', ce['id'])[:6], 16):012d}"
    return {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": partition_key, "sequenceNumber": number,
                    "data": base64.b64encode(text.encode()).decode(),
                    "approximateArrivalTimestamp": round(when.timestamp(), 3)},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/{function}-role", "awsRegion": region,
        "eventSourceARN": f"arn:aws:kinesis:{region}:{ACCOUNT}:stream/{function}",
    }]}


def schedule_event(ce: dict[str, Any], data: Any, function: str, region: str, when: datetime) -> dict[str, Any]:
    return {
        "version": "0", "id": _uuid("schedule", ce["id"]), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT, "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{function}-schedule"],
        "detail": data if isinstance(data, dict) else {},
    }
