"""PURE: `faasemu events new TYPE`, realistic platform events to start a test or an events file from
(as `sam local generate-event` prints them).

Every shape comes from the runtime that delivers it (runtimes/aws_lambda.py, aws_sqs.py,
aws_sources.py, aws_apigw.py: SQS, SNS, EventBridge, S3, DynamoDB Streams, Kinesis, schedules, API
Gateway's two payload formats), so what this prints is exactly what a handler receives from
`faasemu up`. Each generator also gives the CloudEvent that `faasemu up`/`replay` turns into that
shape, when there is one (`--jsonl` appends it to an events file). docs/delivery.md#event-generators. In the
runtimes layer: it builds events with the aws-lambda runtime's own builders.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faasemu.project.spec import FunctionSpec
from faasemu.runtimes import aws_apigw, aws_common, aws_lambda, azure, google_sources
from faasemu.runtimes.base import Delivery, HttpRequest


@dataclass(frozen=True)
class EventOptions:
    """The fields people change; each generator reads those that mean something to it."""

    data: Any = None  # a JSON value: the message body, the detail, the request body
    function: str = "my-function"  # names the queue, the topic, the rule
    type: str = "com.example.order.created"  # the CloudEvent type (EventBridge's detail-type)
    source: str = "com.example.shop"
    bucket: str = "my-bucket"
    key: str = "uploads/photo.jpg"
    size: int = 1024
    method: str = "POST"
    path: str = "/orders"
    region: str = aws_common.DEFAULT_REGION
    now: float = 0.0  # seconds since the epoch; 0: the current time
    document: str = "users/ada"  # firestore: the document's path
    protobuf: bool = False  # firestore: the data as Firestore sends it by default (application/protobuf)


@dataclass(frozen=True)
class Generated:
    """The platform event, and the CloudEvent that produces it through faasemu (None: none does yet)."""

    event: Any
    cloudevent: dict[str, Any] | None


def _when(options: EventOptions) -> float:
    return options.now or time.time()


def _cloudevent(options: EventOptions) -> dict[str, Any]:
    stamp = _when(options)
    digest = hashlib.sha256(f"{options.type}\0{stamp}\0{json.dumps(options.data)}".encode()).hexdigest()
    event = {
        "specversion": "1.0", "id": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
        "source": options.source, "type": options.type,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)), "datacontenttype": "application/json",
        "data": {"order": "o-1001", "total": 42.5} if options.data is None else options.data,
    }
    return event


def _spec(options: EventOptions) -> FunctionSpec:
    return FunctionSpec(options.function, "app.py:handler", "aws-lambda", env={"AWS_REGION": options.region})


def _delivered(source: str) -> Callable[[EventOptions], Generated]:
    def generate(options: EventOptions) -> Generated:
        cloudevent = _cloudevent(options)
        delivery = Delivery(cloudevent, 1, "")
        return Generated(aws_lambda.build_event(source, delivery, _spec(options)), cloudevent)

    return generate


def _request(options: EventOptions) -> HttpRequest:
    path, _, query = options.path.partition("?")
    body = b"" if options.data is None else json.dumps(options.data).encode()
    headers = [("host", "127.0.0.1:8080"), ("user-agent", "curl/8.5.0"), ("accept", "*/*")]
    if body:
        headers.append(("content-type", "application/json"))
    return HttpRequest(options.method.upper(), path, query, headers, body, path,
                       time_ms=int(_when(options) * 1000))


def _request_id(options: EventOptions) -> str:
    digest = hashlib.sha256(f"{options.method}\0{options.path}\0{_when(options)}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def apigw_v1(options: EventOptions) -> Generated:
    return Generated(aws_apigw.build_v1_event(_request(options), _request_id(options)), None)


def apigw_v2(options: EventOptions) -> Generated:
    request = _request(options)
    return Generated(aws_apigw.build_v2_event(request, _request_id(options), f"{request.method} {request.path}"),
                     None)


def _source(source: str, data: Callable[[EventOptions], Any]) -> Callable[[EventOptions], Generated]:
    """An event source whose CloudEvent data has a shape of its own (runtimes/aws_sources.py)."""
    def generate(options: EventOptions) -> Generated:
        cloudevent = {**_cloudevent(options), "data": data(options)}
        delivery = Delivery(cloudevent, 1, "")
        return Generated(aws_lambda.build_event(source, delivery, _spec(options)), cloudevent)

    return generate


def _s3_data(options: EventOptions) -> Any:
    return {"bucket": options.bucket, "key": options.key, "size": options.size, "eventName": "ObjectCreated:Put"}


def _dynamodb_data(options: EventOptions) -> Any:
    if options.data is not None:
        return options.data
    row = {"id": "o-1001", "status": "placed", "total": 42.5}
    return {"keys": {"id": row["id"]}, "new": row}


def _kinesis_data(options: EventOptions) -> Any:
    return {"order": "o-1001", "total": 42.5} if options.data is None else options.data


def _schedule_data(options: EventOptions) -> Any:
    return options.data if isinstance(options.data, dict) else {}


def pubsub(options: EventOptions) -> Generated:
    """The Eventarc CloudEvent of a Pub/Sub message, as a `gcf` function with `event_source: pubsub` gets it."""
    event = _cloudevent(options)
    return Generated(google_sources.pubsub_event(event, options.function), event)


def storage(options: EventOptions) -> Generated:
    """The Eventarc CloudEvent of a Cloud Storage object finalized (`gcf`, `event_source: storage`)."""
    event = {**_cloudevent(options), "data": {"bucket": options.bucket, "name": options.key, "size": options.size,
                                              "contentType": "image/jpeg"}}
    return Generated(google_sources.storage_event(event), event)


def firestore(options: EventOptions) -> Generated:
    """A Firestore document change through Eventarc (`google.cloud.firestore.document.v1.written`; `--type
    created|updated|deleted` for the others): --document is the path, --data its fields or
    `{"old": {...}, "new": {...}}`. The data is JSON (a trigger's `--event-data-content-type=application/json`)
    unless `protobuf`, Firestore's default. The CloudEvent is delivered as it is (posted, or in an events file)."""
    given = _cloudevent(options)
    if options.data is None:
        given["data"] = {"name": "Ada Lovelace", "visits": 1}
    kind = options.type.removeprefix(google_sources.FIRESTORE_PREFIX)
    event = google_sources.firestore_event(given, options.document,
                                           kind if kind in google_sources.FIRESTORE_KINDS else "written",
                                           options.protobuf)
    return Generated(event, event)


def eventgrid(options: EventOptions) -> Generated:
    """An Event Grid event (Event Grid schema), as the `azure` runtime gives an Event Grid trigger."""
    event = {**_cloudevent(options), "source": f"/subscriptions/{_AZURE_SUBSCRIPTION}/resourceGroups/rg/providers/"
                                              f"Microsoft.EventGrid/topics/{options.function}",
             "subject": options.path}
    return Generated(json.loads(azure.event_grid_data(event)[1]), event)


def blob(options: EventOptions) -> Generated:
    """A `Microsoft.Storage.BlobCreated` Event Grid event (how Blob Storage events reach a function through an
    Event Grid trigger): --bucket is the container, --key the blob, --size its length."""
    account = "faasemustorage"
    etag = hashlib.md5(f"{options.bucket}/{options.key}".encode(), usedforsecurity=False).hexdigest()
    event = {**_cloudevent(options), "type": "Microsoft.Storage.BlobCreated",
             "source": f"/subscriptions/{_AZURE_SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Storage/"
                       f"storageAccounts/{account}",
             "subject": f"/blobServices/default/containers/{options.bucket}/blobs/{options.key}",
             "data": {"api": "PutBlob", "clientRequestId": etag[:8] + "-faasemu", "requestId": etag[8:16] + "-faasemu",
                      "eTag": f"0x{etag[:15].upper()}", "contentType": "application/octet-stream",
                      "contentLength": options.size, "blobType": "BlockBlob",
                      "url": f"https://{account}.blob.core.windows.net/{options.bucket}/{options.key}",
                      "sequencer": etag[:32].upper(), "storageDiagnostics": {"batchId": etag[:8]}}}
    return Generated(json.loads(azure.event_grid_data(event)[1]), event)


def queue(options: EventOptions) -> Generated:
    """A Storage Queue message as the `azure` runtime gives a queue trigger: the body, and the trigger's
    metadata (`Id`, `DequeueCount`, `InsertionTime`, ...) as the host passes them."""
    event = _cloudevent(options)
    body, metadata = azure.queue_data(Delivery(event, 1, ""), _when(options))
    shown = {name: json.loads(value) if kind == "json" else value for name, (kind, value) in metadata.items()}
    return Generated({"body": body[1], "metadata": shown}, event)


_AZURE_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def cloudevent(options: EventOptions) -> Generated:
    """A structured-mode CloudEvent 1.0, the form events files and `POST /_faasemu/events` take."""
    event = _cloudevent(options)
    return Generated(event, event)


GENERATORS: dict[str, tuple[Callable[[EventOptions], Generated], str]] = {
    "sqs": (_delivered("sqs"), "an SQS message as Lambda receives it (event_source: sqs)"),
    "sns": (_delivered("sns"), "an SNS notification (event_source: sns)"),
    "eventbridge": (_delivered("eventbridge"), "an EventBridge event (event_source: eventbridge, the default)"),
    "apigw-v1": (apigw_v1, "an API Gateway REST API proxy request (payload format 1.0)"),
    "apigw-v2": (apigw_v2, "an HTTP API / Function URL request (payload format 2.0)"),
    "s3": (_source("s3", _s3_data), "an S3 ObjectCreated:Put notification (event_source: s3)"),
    "dynamodb": (_source("dynamodb", _dynamodb_data),
                 'a DynamoDB Streams record (event_source: dynamodb; --data \'{"keys", "new", "old"}\')'),
    "kinesis": (_source("kinesis", _kinesis_data), "a Kinesis Data Streams record (event_source: kinesis)"),
    "schedule": (_source("schedule", _schedule_data), "an EventBridge scheduled event (event_source: schedule)"),
    "pubsub": (pubsub, "a Pub/Sub message as Eventarc delivers it to a Cloud Function (gcf, event_source: pubsub)"),
    "storage": (storage, "a Cloud Storage object finalized, through Eventarc (gcf, event_source: storage)"),
    "firestore": (firestore, "a Firestore document written, through Eventarc (gcf; --document, --protobuf)"),
    "eventgrid": (eventgrid, "an Azure Event Grid event (azure, event_source: eventgrid)"),
    "blob": (blob, "an Azure Blob Storage BlobCreated event, through Event Grid (azure, event_source: eventgrid)"),
    "queue": (queue, "an Azure Storage Queue message and its trigger metadata (azure, event_source: queue)"),
    "cloudevent": (cloudevent, "a CloudEvent 1.0 (events files, POST /_faasemu/events)"),
}


def generate(kind: str, options: EventOptions) -> Generated:
    """Raises KeyError naming the kinds there are."""
    try:
        make = GENERATORS[kind][0]
    except KeyError:
        raise KeyError(f"unknown event type {kind!r}; one of: {', '.join(GENERATORS)}") from None
    return make(options)
