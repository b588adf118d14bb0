"""AWS Lambda: `fn(event, context)`, the sandbox's environment, the runtime's error JSON, and the
event each event source sends (`build_event`).

Runs inside workers, so standard library only. Every conversion is a pure function of its inputs
(time comes in as a clock callable or a timestamp), mirroring the Python runtime interface client
(awslambdaric: context, marshalling, error JSON). The components in front of the runtime have
modules of their own, which this one's Adapter and `build_event` call: API Gateway's events and
answers (aws_apigw.py), SQS's records and batch responses (aws_sqs.py), the other event sources
(aws_sources.py); what they share is aws_common.py. hashlib and decimal are imported where used:
at module level they would add 3.5 ms to every worker start.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from faasemu.events.model import event_time
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes import aws_sources
from faasemu.runtimes.adapter import BaseAdapter, handler_frames
from faasemu.runtimes.aws_apigw import (
    JSON_HEADERS,
    build_v1_event,
    build_v2_event,
    gateway_error,
    response_v1,
    response_v2,
    route_key,
)
from faasemu.runtimes.aws_common import ACCOUNT, JSON_KINDS, LambdaFault, event_payload, order_value, region
from faasemu.runtimes.aws_sqs import batch_failures, delivers_batches, sqs_record
from faasemu.runtimes.base import Delivery, HttpRequest, HttpResponse, Invocation
from faasemu.runtimes.contract import Runtime

Clock = Callable[[], float]
INVOKE_EVENT_TYPE = "aws.lambda.invoke"  # the CloudEvent type of an Invoke API `Event` invocation, queued on the bus
_THIS_FILE = os.path.abspath(__file__)
_LOAD_ERROR_TYPES = {
    "SyntaxError": "Runtime.UserCodeSyntaxError", "IndentationError": "Runtime.UserCodeSyntaxError",
    "TabError": "Runtime.UserCodeSyntaxError", "ImportError": "Runtime.ImportModuleError",
    "ModuleNotFoundError": "Runtime.ImportModuleError", "EntryPointError": "Runtime.HandlerNotFound",
}


class MarshalError(LambdaFault):
    error_type = "Runtime.MarshalError"


class UnmarshalError(LambdaFault):
    error_type = "Runtime.UnmarshalError"


# -- context and environment ---------------------------------------------------------------------


class LambdaContext:
    """The `context` argument. `memory_limit_in_mb` is a str, as the runtime reads it from the environment."""

    def __init__(self, spec: FunctionSpec, inv: Invocation, clock: Clock = time.time,
                 log_stream: str | None = None, client_context: Any = None) -> None:
        self.aws_request_id = inv.request_id
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(spec)
        self.memory_limit_in_mb = str(spec.memory)
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = log_stream or log_stream_name(spec, clock())
        # awslambdaric always builds an identity, with None fields outside mobile SDK calls
        self.identity = SimpleNamespace(cognito_identity_id=None, cognito_identity_pool_id=None)
        self.client_context = client_context
        self._deadline_ms = int(inv.deadline * 1000)
        self._clock = clock

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(self._clock() * 1000), 0)

    def log(self, msg: object) -> None:
        """The real context has it too; handlers written for Lambda call it."""
        sys.stdout.write(str(msg))


class Client:
    """`context.client_context.client`: the mobile SDK's app facts (awslambdaric's slots, None when absent)."""

    # the SDK's order, not sorted
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")  # noqa: RUF023

    def __init__(self, data: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, data.get(name))


class ClientContext:
    """`context.client_context`, built as awslambdaric builds it from the caller's JSON."""

    # the SDK's order, not sorted
    __slots__ = ("custom", "env", "client")  # noqa: RUF023

    def __init__(self, data: dict[str, Any]) -> None:
        self.custom = data.get("custom")
        self.env = data.get("env")
        client = data.get("client")
        self.client = Client(client) if isinstance(client, dict) else client


def client_context(encoded: str) -> ClientContext | None:
    """The Invoke API's `X-Amz-Client-Context` (base64 of a JSON object) as the handler sees it."""
    if not encoded:
        return None
    data = json.loads(base64.b64decode(encoded))
    return ClientContext(data) if isinstance(data, dict) else None


def request_id(spec: FunctionSpec, seed: int, event: dict[str, Any], copy: int, attempt: int) -> str:
    """`aws_request_id` of an event delivery: a version-4 UUID, as on Lambda, and a pure function of
    (seed, function, event id, copy or attempt).

    Lambda invokes EventBridge, SNS and Invoke `Event` targets asynchronously: its own retries of a
    failed invocation keep the request id, while another delivery of the event by its source (a
    duplicate, `copy` > 0) is a new invocation. An SQS event source mapping polls synchronously: every
    receive is a new invocation, so there the id follows the attempt. An `Event` invocation keeps the
    request id the Invoke API answered with (the event's id).
    """
    event_id = str(event.get("id"))
    if event.get("type") == INVOKE_EVENT_TYPE:
        if copy == 0 and _is_uuid(event_id):
            return event_id
        key = f"copy\0{copy}"
    elif spec.options.get("event_source", "eventbridge") == "sqs":
        key = f"attempt\0{attempt}"
    else:
        key = f"copy\0{copy}"
    return _uuid_of(f"{seed}\0{spec.name}\0{event_id}\0{key}")


@functools.lru_cache(maxsize=1 << 16)  # a campaign asks the same deliveries' ids in every run
def _uuid_of(text: str) -> str:
    """A version-4 UUID from the sha256 of `text`."""
    import hashlib

    digest = hashlib.sha256(text.encode()).digest()
    value = int.from_bytes(digest[:16], "big")
    value = (value & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)  # version 4, RFC variant
    hexed = f"{value:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def _is_uuid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(c in "0123456789abcdef" for c in "".join(parts))


def function_arn(spec: FunctionSpec) -> str:
    return f"arn:aws:lambda:{region(spec)}:{ACCOUNT}:function:{spec.name}"


def log_stream_name(spec: FunctionSpec, now: float) -> str:
    """`2024/05/01/[$LATEST]<32 hex>`, Lambda's form; the hex is stable per function here."""
    import hashlib

    day = time.strftime("%Y/%m/%d", time.gmtime(now))
    return f"{day}/[$LATEST]{hashlib.sha256(spec.name.encode()).hexdigest()[:32]}"


def handler_setting(spec: FunctionSpec, root: str) -> str:
    """`_HANDLER` as Lambda writes it.

    `sample_functions/orders.py:create_order` -> `sample_functions/orders.create_order`.
    """
    if spec.handler_file:
        module = os.path.splitext(os.path.relpath(spec.handler_file, root))[0].replace(os.sep, "/")
    else:
        module = spec.handler_module or spec.handler.partition(":")[0]
    return f"{module}.{spec.handler_attr}" if spec.handler_attr else module


def environment(spec: FunctionSpec, root: str, clock: Clock = time.time) -> dict[str, str]:
    """The variables the Lambda sandbox sets (the manifest's `env` is applied on top by the pool)."""
    aws_region = region(spec)
    return {
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_REGION": aws_region,
        "AWS_DEFAULT_REGION": spec.env.get("AWS_DEFAULT_REGION") or aws_region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "LAMBDA_TASK_ROOT": root,
        "LAMBDA_RUNTIME_DIR": os.path.dirname(_THIS_FILE),
        "_HANDLER": handler_setting(spec, root),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name(spec, clock()),
        "TZ": ":UTC",
    }


def http_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    return spec.http


# -- marshalling and errors (awslambdaric) --------------------------------------------------------


def escapes_unicode(execution_env: str | None) -> bool:
    """awslambdaric writes Unicode unescaped only when AWS_EXECUTION_ENV is `AWS_Lambda_python3.12`."""
    return execution_env not in {"AWS_Lambda_python3.12"}


def marshal(result: Any, ascii_only: bool = True) -> bytes:
    """The result as the runtime sends it: bytes untouched, else JSON (None -> `null`).

    Like awslambdaric's simplejson encoder, a Decimal (what boto3 reads from DynamoDB) is written
    as its exact digits and a NaN Decimal as NaN. Anything else unserialisable is
    `Runtime.MarshalError`, the runtime's own error type, with its message.
    """
    if isinstance(result, bytes):
        return result
    decimals: list[str] = []
    token = f"\x00decimal{id(decimals)}:"

    def default(obj: Any) -> Any:
        import decimal

        if isinstance(obj, decimal.Decimal):
            if obj.is_nan():
                return math.nan
            decimals.append(str(obj))
            return f"{token}{len(decimals) - 1}\x00"
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    try:
        text = json.dumps(result, default=default, ensure_ascii=ascii_only)
    except Exception as exc:
        raise MarshalError(f"Unable to marshal response: {exc}") from None
    for index, digits in enumerate(decimals):
        text = text.replace(f'"\\u0000decimal{id(decimals)}:{index}\\u0000"', digits, 1)
    return text.encode()


def unmarshal(payload: bytes) -> Any:
    """The Invoke API's payload as the event; an empty payload is `{}`."""
    if not payload.strip():
        return {}
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise UnmarshalError(f"Unable to unmarshal input: {exc}") from None


def stack_trace(exc: BaseException) -> list[str]:
    """`traceback.format_list` of the handler's frames: those below this module's last frame, as
    awslambdaric drops its own bootstrap.py frames."""
    return traceback.format_list(handler_frames(exc, _THIS_FILE))


def error_payload(exc: BaseException, inv: Invocation) -> dict[str, Any]:
    """The runtime's error document: same keys and order as awslambdaric's `make_error`."""
    if isinstance(exc, LambdaFault):  # the runtime's own errors carry no stack trace
        return {"errorMessage": str(exc), "errorType": exc.error_type, "requestId": inv.request_id, "stackTrace": []}
    return {"errorMessage": str(exc), "errorType": type(exc).__name__, "requestId": inv.request_id,
            "stackTrace": stack_trace(exc)}


def failure_payload(kind: str, message: str, request_id: str) -> dict[str, Any]:
    """What Lambda reports when the sandbox, not the handler, failed: timeout, exit, OOM, init error."""
    if kind == "unavailable":
        # The message is the loader's "Type: text (file:line)"; Lambda names init errors by kind.
        name, sep, text = message.partition(": ")
        if not sep or not name.replace(".", "").isidentifier():
            name, text = "Runtime.Unknown", message
        return {"errorMessage": text, "errorType": _LOAD_ERROR_TYPES.get(name, name)}
    error_type = {"timeout": "Sandbox.Timedout", "crash": "Runtime.ExitError", "oom": "Runtime.OutOfMemory"}
    return {"errorMessage": f"RequestId: {request_id} Error: {message}", "errorType": error_type.get(kind, kind)}


def failure_response(kind: str, message: str, request_id: str) -> HttpResponse:
    status = {"timeout": 504, "unavailable": 503}.get(kind, 502)
    payload = failure_payload(kind, message, request_id)
    headers = [*JSON_HEADERS, ("x-faasemu-error", error_header(f"{payload['errorType']}: {payload['errorMessage']}"))]
    return HttpResponse(status, headers, json.dumps(payload).encode())


def error_header(text: str, limit: int = 512) -> str:
    """`x-faasemu-error`: faasemu's own header, so a client can see what API Gateway's answer hides.
    One line of printable ASCII (header values travel as latin-1), other characters escaped."""
    safe = "".join(c if " " <= c <= "~" else " " for c in text.encode("ascii", "backslashreplace").decode())
    safe = " ".join(safe.split())
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def error_response(exc: BaseException, inv: Invocation, payload: str = "v2") -> HttpResponse:
    """API Gateway's answer when the handler raised: it never passes the runtime's error document on.
    HTTP API (format 2.0) answers 500 `{"message":"Internal Server Error"}`; REST API (1.0) 502
    `{"message": "Internal server error"}`. The error itself goes to the console and `x-faasemu-error`."""
    error = error_payload(exc, inv)
    response = gateway_error(502, "Internal server error") if payload == "v1" else gateway_error(
        500, "Internal Server Error")
    response.headers.append(("x-faasemu-error", error_header(f"{error['errorType']}: {error['errorMessage']}")))
    return response


# -- events: one per event source (SQS's records: aws_sqs.py; S3, DynamoDB, Kinesis, schedules: aws_sources.py)


def partition_key(event: dict[str, Any], spec: FunctionSpec) -> str:
    """A Kinesis record's partition key: the value at the function's order_key (records of one key are
    ordered, as in a shard), else the event's subject, else its id."""
    if spec.order_key:
        value = order_value(event, spec.order_key)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return str(event.get("subject") or event["id"])


def build_event(source: str, delivery: Delivery | Sequence[Delivery], spec: FunctionSpec,
                sequences: Sequence[int | None] = ()) -> Any:
    """The Lambda event for one delivery attempt, as EventBridge, SQS or SNS would send it.

    For SQS, `delivery` may be a list: the records of one batch, in order (docs/delivery.md#batches-sqs),
    and `sequences` their positions in the event log or events file (a FIFO queue's SequenceNumber).
    """
    import hashlib

    if not isinstance(delivery, Delivery):
        if source != "sqs":
            raise ValueError(f"only event_source: sqs delivers several records in one event, not {source!r}")
        positions = list(sequences) + [None] * (len(delivery) - len(sequences))
        return {"Records": [sqs_record(d, spec, position) for d, position in zip(delivery, positions)]}
    ce = delivery.event
    data, text = event_payload(ce)
    aws_region = region(spec)
    when = event_time(ce)
    if source == "raw":
        return data
    if source == "sqs":
        return {"Records": [sqs_record(delivery, spec, sequences[0] if sequences else None)]}
    sequence = sequences[0] if sequences else None
    if source == "s3":
        return aws_sources.s3_event(ce, data, spec.name, aws_region, when)
    if source == "dynamodb":
        return aws_sources.dynamodb_event(ce, data, spec.name, aws_region, when, sequence)
    if source == "kinesis":
        return aws_sources.kinesis_event(ce, text, partition_key(ce, spec), spec.name, aws_region, when, sequence)
    if source == "schedule":
        return aws_sources.schedule_event(ce, data, spec.name, aws_region, when)
    if source == "sns":
        topic = f"arn:aws:sns:{aws_region}:{ACCOUNT}:{spec.name}"
        return {"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": f"{topic}:{hashlib.sha256(spec.name.encode()).hexdigest()[:32]}",
            "Sns": {
                "Type": "Notification", "MessageId": ce["id"], "TopicArn": topic, "Subject": ce.get("subject"),
                "Message": text, "Timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
                "SignatureVersion": "1", "Signature": "FAASEMU", "MessageAttributes": {},
                "SigningCertUrl": f"https://sns.{aws_region}.amazonaws.com/SimpleNotificationService.pem",
                "UnsubscribeUrl": f"https://sns.{aws_region}.amazonaws.com/?Action=Unsubscribe",
            },
        }]}
    return {  # EventBridge: whole seconds, as its `time` field carries
        "version": "0", "id": ce["id"], "detail-type": ce.get("type"), "source": ce.get("source"),
        "account": ACCOUNT, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": aws_region,
        "resources": [], "detail": {} if data is None else data,  # no data: EventBridge's empty detail
    }


def refuse_event(spec: FunctionSpec, event: dict[str, Any]) -> str | None:
    """Why this event cannot reach this function, or None. EventBridge's `detail` is a JSON object
    (PutEvents refuses anything else as `MalformedDetail`), and Powertools' EventBridgeModel rejects
    any other detail: an event whose data is text, a list, a string or a number is refused where it
    enters (the ingress, replay and chaos files), as EventBridge would, rather than delivered. An
    event without data (or `null`) is delivered with `"detail": {}`, as EventBridge's own events
    with nothing to add (Scheduled Event) carry."""
    if spec.options.get("event_source", "eventbridge") != "eventbridge" or event.get("type") in _NOT_EVENTBRIDGE:
        return None
    try:
        data, _ = event_payload(event)
    except ValueError:
        data = "undecodable base64"
    if data is None or isinstance(data, dict):
        return None
    found = f"a JSON {JSON_KINDS.get(type(data), type(data).__name__)}"
    mime = str(event.get("datacontenttype") or "application/json")
    if isinstance(data, str) and ("data_base64" in event or "json" not in mime):
        found = f"text ({mime})"
    return (f"event {event.get('id')!r} (type {event.get('type')!r}) cannot go to function {spec.name!r} "
            f"(aws-lambda, event_source: eventbridge): its data is {found}, and EventBridge's detail must be "
            f"a JSON object (PutEvents refuses others as MalformedDetail). Send a JSON object as data, or set "
            f"event_source: sqs, sns or raw for {spec.name}")


_NOT_EVENTBRIDGE = (INVOKE_EVENT_TYPE, "faasemu.http.request")


# -- the Invoke API's log tail (`LogType: Tail`) ----------------------------------------------------


class LogTail:
    """The output of the invocation in progress, for the Invoke API's `LogType: Tail`.

    Installed over sys.stdout and sys.stderr before the user's module is imported, so loggers that
    keep a reference to the stream (logging.StreamHandler, Powertools' Logger) are seen too. Text is
    written through unchanged; only while `start()`..`stop()` runs is a copy kept, bounded to the
    last `limit` bytes, as Lambda's tail is.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.active = False
        self.buffer = bytearray()

    def install(self) -> None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if not isinstance(stream, _TeeStream):
                setattr(sys, name, _TeeStream(stream, self))

    def add(self, text: str) -> None:
        self.buffer += text.encode("utf-8", "replace")
        if len(self.buffer) > 2 * self.limit:
            del self.buffer[: -self.limit]

    def start(self) -> None:
        self.buffer.clear()
        self.active = True

    def stop(self) -> bytes:
        self.active = False
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        return bytes(self.buffer[-self.limit :])


class _TeeStream:
    """A text stream that writes through to `stream` and copies into the LogTail while it is active."""

    def __init__(self, stream: Any, tail: LogTail) -> None:
        self._stream = stream
        self._tail = tail

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        if self._tail.active:
            self._tail.add(text)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# -- the adapter --------------------------------------------------------------------------------


class Adapter(BaseAdapter):
    """Lambda's runtime loop for one function: build the event, call `fn(event, context)`, answer."""

    def __init__(self, spec: FunctionSpec, clock: Clock = time.time, capture_output: bool | None = None) -> None:
        super().__init__(spec)
        self.clock = clock
        self.payload = spec.options.get("payload", "v2")
        self.event_source = spec.options.get("event_source", "eventbridge")
        self.log_stream = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.ascii_only = escapes_unicode(os.environ.get("AWS_EXECUTION_ENV"))
        # Inside a worker (the sandbox's variables are set), watch the output for `LogType: Tail`.
        self.tail: LogTail | None = None
        self.last_log: bytes | None = None
        capture = bool(self.log_stream) if capture_output is None else capture_output
        if capture:
            self.tail = LogTail()
            self.tail.install()

    def context(self, inv: Invocation) -> LambdaContext:
        return LambdaContext(self.spec, inv, self.clock, self.log_stream, client_context(inv.client_context))

    def _call(self, event: Any, inv: Invocation) -> Any:
        return self.bound()(event, self.context(inv))

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        if not request.time_ms:
            request = dataclasses.replace(request, time_ms=int(self.clock() * 1000))
        if self.payload == "v1":
            result = self._call(build_v1_event(request, inv.request_id), inv)
            return response_v1(marshal(result, self.ascii_only))
        result = self._call(build_v2_event(request, inv.request_id, route_key(self.spec, request)), inv)
        return response_v2(marshal(result, self.ascii_only))

    def invoke_raw(self, payload: bytes, inv: Invocation) -> bytes:
        """The Invoke API's call; the invocation's output is kept in `last_log` for `LogType: Tail`."""
        if self.tail is None:
            return marshal(self._call(unmarshal(payload), inv), self.ascii_only)
        self.tail.start()
        try:
            return marshal(self._call(unmarshal(payload), inv), self.ascii_only)
        except Exception as exc:
            # awslambdaric logs an unhandled error as `[ERROR] Type: message` and the traceback
            error = error_payload(exc, inv)
            self.tail.add(f"[ERROR] {error['errorType']}: {error['errorMessage']}\n"
                          + ("Traceback (most recent call last):\n" + "".join(error["stackTrace"])
                             if error["stackTrace"] else ""))
            raise
        finally:
            self.last_log = self.tail.stop()

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        self._call(build_event(self.event_source, delivery, self.spec), inv)

    def deliver_batch(self, deliveries: Sequence[Delivery], inv: Invocation,
                      sequences: Sequence[int | None] = ()) -> list[int]:
        """One invocation with one SQS record per delivery. Returns the positions of the records that
        failed: none when the handler returned (its answer is read only with
        report_batch_item_failures, by `batch_failures`); raises when the whole batch failed."""
        if self.event_source != "sqs":
            return super().deliver_batch(deliveries, inv, sequences)
        result = self._call(build_event("sqs", list(deliveries), self.spec, sequences), inv)
        if not self.spec.report_batch_item_failures:
            return []
        return batch_failures(result, [str(d.event["id"]) for d in deliveries])

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        return error_response(exc, inv, self.payload)

    error_payload = staticmethod(error_payload)


RUNTIME = Runtime("aws-lambda", Adapter, environment, http_routes, failure_response, refuse_event=refuse_event,
                  request_id=request_id, failure_payload=failure_payload, delivers_batches=delivers_batches)
