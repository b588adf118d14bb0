"""PURE: the CloudEvents Google's event sources send a Cloud Function (through Eventarc), built from an
event of faasemu's: `event_source: pubsub` or `storage` on a `gcf` function (docs/delivery.md#google-event-sources).

- `pubsub`: type `google.cloud.pubsub.topic.v1.messagePublished`, source the topic, data
  `{"message": {"data": base64 of the event's data as JSON text, "messageId", "publishTime", "attributes"?,
  "orderingKey"?}, "subscription"}`. The message id is the CloudEvent id (a numeric string, as Pub/Sub's),
  the same for every redelivery of one message, as Pub/Sub's at-least-once delivery keeps it; `orderingKey`
  is the value at the function's `order_key` (Pub/Sub orders messages of one key for a subscription with
  message ordering on). The event's `subject`, if any, is the `subject` attribute.
- `storage`: type `google.cloud.storage.object.v1.finalized` (or the data's `eventType`: `deleted`,
  `archived`, `metadataUpdated`), source `//storage.googleapis.com/projects/_/buckets/BUCKET`, subject
  `objects/NAME`, data Cloud Storage's object resource (`StorageObjectData`: numbers as strings, as the
  JSON API writes them) from `{"bucket", "name", "size"?, "contentType"?}`.

A function with the `event` (1st-gen background) signature gets these through functions-framework's own
conversion, as on Google: `(data, context)` with the legacy types (runtimes/gcf.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC
from typing import Any

from faasemu.events.model import event_time

PROJECT = "faasemu-local"  # the fake project id in resource names
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_TYPES = {"finalized", "deleted", "archived", "metadataUpdated"}


def _number(*parts: object) -> str:
    """A stable numeric id (Pub/Sub message ids and Storage generations are decimal strings)."""
    return str(int(hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:13], 16))


def _time(event: dict[str, Any]) -> str:
    when = event_time(event).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _payload(event: dict[str, Any]) -> bytes:
    if "data_base64" in event:
        return base64.b64decode(event["data_base64"])
    data = event.get("data")
    if isinstance(data, str) and "json" not in str(event.get("datacontenttype") or "application/json"):
        return data.encode()
    return json.dumps(data).encode()


def pubsub_event(event: dict[str, Any], function: str, ordering_key: str | None = None) -> dict[str, Any]:
    message_id = _number("pubsub", event["id"])
    message: dict[str, Any] = {"data": base64.b64encode(_payload(event)).decode(), "messageId": message_id,
                               "publishTime": _time(event)}
    if event.get("subject"):
        message["attributes"] = {"subject": str(event["subject"])}
    if ordering_key:
        message["orderingKey"] = ordering_key
    return {
        "specversion": "1.0", "id": message_id, "type": PUBSUB_TYPE,
        "source": f"//pubsub.googleapis.com/projects/{PROJECT}/topics/{function}", "time": _time(event),
        "datacontenttype": "application/json",
        "data": {"message": message, "subscription": f"projects/{PROJECT}/subscriptions/{function}"},
    }


def storage_event(event: dict[str, Any]) -> dict[str, Any]:
    given = event.get("data")
    data: dict[str, Any] = given if isinstance(given, dict) else {}
    bucket = str(data.get("bucket") or "my-bucket")
    name = str(data.get("name") or event.get("subject") or "uploads/object")
    kind = str(data.get("eventType") or "finalized")
    kind = kind if kind in STORAGE_TYPES else "finalized"
    generation = _number("generation", bucket, name, event["id"])
    size = data.get("size") if isinstance(data.get("size"), int) else 0
    created = _time(event)
    digest = hashlib.md5(f"{bucket}/{name}/{generation}".encode(), usedforsecurity=False).digest()
    resource = {
        "kind": "storage#object", "id": f"{bucket}/{name}/{generation}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}",
        "mediaLink": f"https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}"
                     f"?generation={generation}&alt=media",
        "name": name, "bucket": bucket, "generation": generation, "metageneration": "1",
        "contentType": str(data.get("contentType") or "application/octet-stream"), "timeCreated": created,
        "updated": created, "storageClass": "STANDARD", "timeStorageClassUpdated": created, "size": str(size),
        "md5Hash": base64.b64encode(digest).decode(), "crc32c": base64.b64encode(digest[:4]).decode(),
        "etag": base64.b64encode(digest[:8]).decode().rstrip("="),
    }
    return {
        "specversion": "1.0", "id": _number("storage", event["id"]), "type": f"google.cloud.storage.object.v1.{kind}",
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}", "subject": f"objects/{name}",
        "time": created, "datacontenttype": "application/json", "data": resource,
    }
