"""PURE: `faasemu events new TYPE`, realistic platform events to start a test or an events file from
(as `sam local generate-event` prints them).

The shapes faasemu itself delivers (SQS, SNS, EventBridge, API Gateway's two payload formats) come
from the runtime that delivers them (runtimes/aws_lambda.py), so what this prints is exactly what a
handler receives from `faasemu up`; the others (S3, a schedule) follow the AWS documentation's
examples. Each generator also gives the CloudEvent that `faasemu up`/`replay` turns into that shape,
when there is one (`--jsonl` appends it to an events file). docs/delivery.md#event-generators. In the
runtimes layer: it builds events with the aws-lambda runtime's own builders.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faasemu.project.spec import FunctionSpec
from faasemu.runtimes import aws_lambda
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
    region: str = aws_lambda.DEFAULT_REGION
    now: float = 0.0  # seconds since the epoch; 0: the current time


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
    return Generated(aws_lambda.build_v1_event(_request(options), _request_id(options)), None)


def apigw_v2(options: EventOptions) -> Generated:
    request = _request(options)
    return Generated(aws_lambda.build_v2_event(request, _request_id(options), f"{request.method} {request.path}"),
                     None)


def s3(options: EventOptions) -> Generated:
    """An S3 `ObjectCreated:Put` notification (event version 2.1), the object key URL-encoded as S3
    sends it (a space becomes `+`)."""
    stamp = _when(options)
    etag = hashlib.md5(f"{options.bucket}/{options.key}".encode(), usedforsecurity=False).hexdigest()
    millis = int(stamp * 1000) % 1000
    record = {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": options.region,
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{millis:03d}Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAFAASEMUEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": etag[:16].upper(), "x-amz-id-2": etag * 2},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": f"{options.function}-trigger",
            "bucket": {"name": options.bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                       "arn": f"arn:aws:s3:::{options.bucket}"},
            "object": {"key": urllib.parse.quote_plus(options.key, safe="/"), "size": options.size,
                       "eTag": etag, "sequencer": f"{int(stamp * 1000):016X}"},
        },
    }
    return Generated({"Records": [record]}, None)


def schedule(options: EventOptions) -> Generated:
    """What an EventBridge schedule rule (`rate(...)`, `cron(...)`) sends: detail-type `Scheduled
    Event`, source `aws.events`, the rule in `resources`, an empty detail."""
    stamp = _when(options)
    digest = hashlib.sha256(f"schedule\0{options.function}\0{stamp}".encode()).hexdigest()
    return Generated({
        "version": "0", "id": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
        "detail-type": "Scheduled Event", "source": "aws.events", "account": aws_lambda.ACCOUNT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)), "region": options.region,
        "resources": [f"arn:aws:events:{options.region}:{aws_lambda.ACCOUNT}:rule/{options.function}-schedule"],
        "detail": {},
    }, None)


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
    "s3": (s3, "an S3 ObjectCreated:Put notification"),
    "schedule": (schedule, "an EventBridge scheduled event"),
    "cloudevent": (cloudevent, "a CloudEvent 1.0 (events files, POST /_faasemu/events)"),
}


def generate(kind: str, options: EventOptions) -> Generated:
    """Raises KeyError naming the kinds there are."""
    try:
        make = GENERATORS[kind][0]
    except KeyError:
        raise KeyError(f"unknown event type {kind!r}; one of: {', '.join(GENERATORS)}") from None
    return make(options)
