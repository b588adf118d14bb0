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
from datetime import UTC, datetime, timedelta
from typing import Any

from faasemu.events.model import event_time

PROJECT = "faasemu-local"  # the fake project id in resource names
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_TYPES = {"finalized", "deleted", "archived", "metadataUpdated"}


def _number(*parts: object) -> str:
    """A stable numeric id (Pub/Sub message ids and Storage generations are decimal strings)."""
    return str(int(hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:13], 16))


def _time(event: dict[str, Any]) -> str:
    return _format(event_time(event).astimezone(UTC))


def _format(when: datetime) -> str:
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


# --- Firestore ------------------------------------------------------------------------------------------------
# A document change as Eventarc delivers it (docs/delivery.md#google-event-sources): the CloudEvent
# attributes Firestore sets (source the database, subject `documents/<path>`, and the extensions location,
# project, database, namespace, document) and `DocumentEventData` (google/events/cloud/firestore/v1/data.proto:
# value, oldValue, updateMask). Firestore sends the data as protobuf (`application/protobuf`) unless the
# trigger asks for JSON (`--event-data-content-type=application/json`): both forms are built here, the
# protobuf by hand from the JSON form, so the runtimes layer needs no protobuf library.

FIRESTORE_KINDS = ("written", "created", "updated", "deleted")
FIRESTORE_PREFIX = "google.cloud.firestore.document.v1."
FIRESTORE_SCHEMA = "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/firestore/v1/data.proto"
FIRESTORE_DATABASE = "(default)"


class FirestoreInputError(ValueError):
    """A document path or document data a Firestore event cannot have."""


def firestore_value(value: Any) -> dict[str, Any]:
    """A JSON value as a Firestore `Value` in proto3 JSON form (an integer is `integerValue`, as text)."""
    if value is None:
        return {"nullValue": "NULL_VALUE"}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [firestore_value(item) for item in value]} if value else {}}
    if isinstance(value, dict):
        return {"mapValue": {"fields": {str(k): firestore_value(v) for k, v in value.items()}} if value else {}}
    raise FirestoreInputError(f"a document field cannot hold {type(value).__name__}")


def firestore_document_path(path: str) -> str:
    """`users/ada` (a collection and a document id, nested as deep as wanted): an even number of segments."""
    parts = path.strip("/").split("/")
    if len(parts) % 2 or not all(parts):
        raise FirestoreInputError(f"document path {path!r} must be collection/document (an even number of "
                                  "non-empty segments, as users/ada or users/ada/orders/o-1)")
    return "/".join(parts)


def firestore_event(event: dict[str, Any], document: str, kind: str = "written", protobuf: bool = False,
                    location: str = "nam5") -> dict[str, Any]:
    """The Eventarc CloudEvent of a change to `document`, from a faasemu event whose data is the document's
    fields (an object), or `{"old": {...}, "new": {...}}` for both sides of an update (`{"old": ...}`
    alone: a delete). `kind` is written, created, updated or deleted; `protobuf` gives the data as
    Firestore sends it by default (`data_base64` of the serialized `DocumentEventData`)."""
    kind = kind.removeprefix(FIRESTORE_PREFIX)
    if kind not in FIRESTORE_KINDS:
        raise FirestoreInputError(f"Firestore event kind {kind!r}: one of {', '.join(FIRESTORE_KINDS)}")
    path = firestore_document_path(document)
    given = event.get("data")
    if isinstance(given, dict) and given and set(given) <= {"old", "new"}:
        old, new = given.get("old"), given.get("new")
    else:
        old, new = None, given if given is not None else {}
    for side, fields in (("new", new), ("old", old)):
        if fields is not None and not isinstance(fields, dict):
            raise FirestoreInputError(f"the document's {side} fields must be a JSON object, "
                                      f"not {type(fields).__name__}")
    if kind == "created":
        old = None
    elif kind == "deleted":
        old, new = (old if old is not None else new), None
    elif kind == "updated" and old is None:
        old = {}
    when = event_time(event).astimezone(UTC)
    now, earlier = _format(when), _format(when - timedelta(hours=1))  # an old version: written an hour before
    name = f"projects/{PROJECT}/databases/{FIRESTORE_DATABASE}/documents/{path}"
    data: dict[str, Any] = {}
    if new is not None:
        data["value"] = _document(name, new, earlier if old is not None else now, now)
    if old is not None:
        data["oldValue"] = _document(name, old, earlier, earlier)
    if new is not None and old is not None:
        changed = sorted(key for key in {*new, *old} if new.get(key, _MISSING) != old.get(key, _MISSING))
        data["updateMask"] = {"fieldPaths": changed}
    digest = hashlib.sha256(f"firestore\0{event['id']}\0{path}\0{kind}".encode()).hexdigest()
    cloudevent: dict[str, Any] = {
        "specversion": "1.0", "id": f"{digest[:8]}-{digest[8:12]}-7{digest[13:16]}-{digest[16:20]}-{digest[20:32]}",
        "source": f"//firestore.googleapis.com/projects/{PROJECT}/databases/{FIRESTORE_DATABASE}",
        "type": FIRESTORE_PREFIX + kind, "subject": f"documents/{path}", "time": now,
        "dataschema": FIRESTORE_SCHEMA, "location": location, "project": PROJECT, "database": FIRESTORE_DATABASE,
        "namespace": "(default)", "document": path,
    }
    if protobuf:
        cloudevent["datacontenttype"] = "application/protobuf"
        cloudevent["data_base64"] = base64.b64encode(document_event_protobuf(data)).decode()
    else:
        cloudevent["datacontenttype"] = "application/json"
        cloudevent["data"] = data
    return cloudevent


_MISSING = object()


def _document(name: str, fields: dict[str, Any], created: str, updated: str) -> dict[str, Any]:
    document: dict[str, Any] = {"name": name}
    if fields:
        document["fields"] = {str(key): firestore_value(value) for key, value in fields.items()}
    return {**document, "createTime": created, "updateTime": updated}


# Protobuf's wire format (protobuf.dev/programming-guides/encoding): a key is (field number << 3) | wire type.
def _varint(number: int) -> bytes:
    number &= (1 << 64) - 1  # a negative int64 is its two's complement: ten bytes
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _timestamp(text: str) -> bytes:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    seconds, nanos = int(when.timestamp()), when.microsecond * 1000
    return (_key(1, 0) + _varint(seconds) if seconds else b"") + (_key(2, 0) + _varint(nanos) if nanos else b"")


def _fields(field: int, fields: dict[str, Any]) -> bytes:
    """A `map<string, Value>`: one entry message (key 1, value 2) per field."""
    return b"".join(_bytes(field, _bytes(1, key.encode()) + _bytes(2, _value(value)))
                    for key, value in fields.items())


def _value(value: dict[str, Any]) -> bytes:
    """A Firestore `Value` from its JSON form (`firestore_value`): the oneof's field numbers of data.proto."""
    import struct

    (kind, item), = value.items()
    if kind == "nullValue":
        return _key(11, 0) + _varint(0)
    if kind == "booleanValue":
        return _key(1, 0) + _varint(1 if item else 0)
    if kind == "integerValue":
        return _key(2, 0) + _varint(int(item))
    if kind == "doubleValue":
        return _key(3, 1) + struct.pack("<d", float(item))
    if kind == "stringValue":
        return _bytes(17, str(item).encode())
    if kind == "arrayValue":
        return _bytes(9, b"".join(_bytes(1, _value(entry)) for entry in item.get("values", [])))
    if kind == "mapValue":
        return _bytes(6, _fields(1, item.get("fields", {})))
    raise FirestoreInputError(f"no protobuf form for a {kind}")


def document_event_protobuf(data: dict[str, Any]) -> bytes:
    """`DocumentEventData` serialized: value 1, old_value 2 (Documents: name 1, fields 2, create_time 3,
    update_time 4), update_mask 3 (field_paths 1)."""
    out = b""
    for number, side in ((1, "value"), (2, "oldValue")):
        document = data.get(side)
        if document is not None:
            out += _bytes(number, _bytes(1, document["name"].encode()) + _fields(2, document.get("fields", {}))
                          + _bytes(3, _timestamp(document["createTime"]))
                          + _bytes(4, _timestamp(document["updateTime"])))
    mask = data.get("updateMask")
    if mask is not None:
        out += _bytes(3, b"".join(_bytes(1, path.encode()) for path in mask["fieldPaths"]))
    return out
