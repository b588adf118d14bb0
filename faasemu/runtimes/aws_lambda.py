"""AWS Lambda: `fn(event, context)`, API Gateway / Function URL payloads, and the runtime's error JSON.

Runs inside workers, so standard library only. Every conversion is a pure function of its inputs
(time comes in as a clock callable or a timestamp), mirroring two real components: the Python
runtime interface client (awslambdaric: context, marshalling, error JSON) and API Gateway
(request events, interpreting the function's answer). hashlib and decimal are imported where
used: at module level they would add 3.5 ms to every worker start.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import sys
import time
import traceback
import urllib.parse
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from faasemu.events.model import event_time
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes import aws_sources
from faasemu.runtimes.adapter import BaseAdapter, handler_frames
from faasemu.runtimes.base import Delivery, HttpRequest, HttpResponse, Invocation
from faasemu.runtimes.contract import Runtime

Clock = Callable[[], float]
JSON_HEADERS = [("content-type", "application/json")]
ACCOUNT = "000000000000"  # a fixed fake account id, as in AWS's documentation examples
DEFAULT_REGION = "us-east-1"
INVOKE_EVENT_TYPE = "aws.lambda.invoke"  # the CloudEvent type of an Invoke API `Event` invocation, queued on the bus
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_THIS_FILE = os.path.abspath(__file__)
# Bodies of these types travel as text; anything else is base64 (see `encode_body`).
_TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/yaml",
               "application/graphql", "application/x-yaml")
_LOAD_ERROR_TYPES = {
    "SyntaxError": "Runtime.UserCodeSyntaxError", "IndentationError": "Runtime.UserCodeSyntaxError",
    "TabError": "Runtime.UserCodeSyntaxError", "ImportError": "Runtime.ImportModuleError",
    "ModuleNotFoundError": "Runtime.ImportModuleError", "EntryPointError": "Runtime.HandlerNotFound",
}


class LambdaFault(Exception):
    """An error the runtime itself reports (awslambdaric's FaultException): its type is not a class name."""

    error_type = "Runtime.Unknown"


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
    import hashlib

    event_id = str(event.get("id"))
    if event.get("type") == INVOKE_EVENT_TYPE:
        if copy == 0 and _is_uuid(event_id):
            return event_id
        key = f"copy\0{copy}"
    elif spec.options.get("event_source", "eventbridge") == "sqs":
        key = f"attempt\0{attempt}"
    else:
        key = f"copy\0{copy}"
    digest = hashlib.sha256(f"{seed}\0{spec.name}\0{event_id}\0{key}".encode()).digest()
    value = int.from_bytes(digest[:16], "big")
    value = (value & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)  # version 4, RFC variant
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _is_uuid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(c in "0123456789abcdef" for c in "".join(parts))


def region(spec: FunctionSpec) -> str:
    return spec.env.get("AWS_REGION") or DEFAULT_REGION


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
    response = _gateway_error(502, "Internal server error") if payload == "v1" else _gateway_error(
        500, "Internal Server Error")
    response.headers.append(("x-faasemu-error", error_header(f"{error['errorType']}: {error['errorMessage']}")))
    return response


# -- HTTP requests (API Gateway) -------------------------------------------------------------------


def encode_body(request: HttpRequest) -> tuple[str | None, bool]:
    """The body as API Gateway passes it: (text or base64, isBase64Encoded); None when empty.

    Our rule, after HTTP API and Function URLs: text/*, JSON, XML, JavaScript, YAML and GraphQL
    (and `+json`/`+xml`) bodies pass as text; every other type is base64, including form posts
    (a quirk that breaks `parse_qs(event["body"])` there, so it does here). Without a
    content-type, valid UTF-8 passes as text. Undecodable bytes are always base64.
    """
    if not request.body:
        return None, False
    mime = (request.header("content-type") or "").split(";")[0].strip().lower()
    textual = not mime or mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))
    if textual:
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode("ascii"), True


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(query, keep_blank_values=True)


def _clf_time(ms: int) -> str:
    """`12/Mar/2020:19:03:58 +0000`, with English month names whatever the locale."""
    t = time.gmtime(ms / 1000)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _domain(request: HttpRequest) -> str:
    host = request.header("host") or request.host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # without the port, as API Gateway


def route_key(spec: FunctionSpec, request: HttpRequest) -> str:
    """`GET /orders/{id}`; `ANY /path` when the trigger takes every method; `$default` without a route."""
    if not request.route:
        return "$default"
    trigger = next((t for t in spec.http if t.path == request.route), None)
    method = "ANY" if trigger is not None and not trigger.methods else request.method
    return f"{method} {request.route}"


def build_v2_event(request: HttpRequest, request_id: str, key: str) -> dict[str, Any]:
    """Payload format 2.0 (HTTP API, Function URLs). Repeated headers and query values are
    comma-joined; `cookie` headers move to `cookies`; empty parts are omitted, not null."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name == "cookie":
            cookies.extend(part for part in value.split("; ") if part)
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    domain = _domain(request)
    event: dict[str, Any] = {"version": "2.0", "routeKey": key, "rawPath": request.path,
                             "rawQueryString": request.query}
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query: dict[str, str] = {}
    for name, value in _query_pairs(request.query):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT, "apiId": "faasemu", "domainName": domain, "domainPrefix": domain.split(".")[0],
        "http": {"method": request.method, "path": request.path, "protocol": "HTTP/1.1",
                 "sourceIp": request.source_ip, "userAgent": headers.get("user-agent", "")},
        "requestId": request_id, "routeKey": key, "stage": "$default",
        "time": _clf_time(request.time_ms), "timeEpoch": request.time_ms,
    }
    body, is_base64 = encode_body(request)
    if body is not None:
        event["body"] = body
    if request.path_params:
        event["pathParameters"] = dict(request.path_params)
    event["isBase64Encoded"] = is_base64
    return event


def build_v1_event(request: HttpRequest, request_id: str) -> dict[str, Any]:
    """Payload format 1.0 (REST API proxy integration): single- and multi-value maps, null when empty."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value  # the last value wins, as API Gateway documents
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in _query_pairs(request.query):
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    resource = request.route or request.path
    body, is_base64 = encode_body(request)
    return {
        "resource": resource, "path": request.path, "httpMethod": request.method,
        "headers": headers or None, "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None, "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(request.path_params) or None, "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "faasemu", "domainName": _domain(request),
            "domainPrefix": _domain(request).split(".")[0], "extendedRequestId": request_id,
            "httpMethod": request.method, "path": request.path, "protocol": "HTTP/1.1",
            "requestId": request_id, "requestTime": _clf_time(request.time_ms),
            "requestTimeEpoch": request.time_ms, "resourceId": None, "resourcePath": resource, "stage": "$default",
            "identity": {"accessKey": None, "accountId": None, "caller": None, "cognitoIdentityId": None,
                         "cognitoIdentityPoolId": None, "sourceIp": request.source_ip, "user": None,
                         "userAgent": headers.get("user-agent"), "userArn": None},
        },
        "body": body, "isBase64Encoded": is_base64,
    }


# -- HTTP responses (API Gateway reading the marshalled result) ----------------------------------


def _gateway_error(status: int, message: str) -> HttpResponse:
    # HTTP API's own errors (500) are written `{"message":"..."}`, REST API's (502) `{"message": "..."}`.
    separators = (",", ":") if status == 500 else (", ", ": ")
    return HttpResponse(status, list(JSON_HEADERS), json.dumps({"message": message}, separators=separators).encode())


def _structured(result: dict[str, Any], multi: bool) -> HttpResponse | None:
    """A `statusCode` response, or None when API Gateway would call it malformed."""
    status, body = result.get("statusCode"), result.get("body")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return None
    if body is not None and not isinstance(body, str):
        return None  # "Lambda body contains the wrong type for field body"
    headers = [(str(k), _header_value(v)) for k, v in (result.get("headers") or {}).items()]
    if multi:  # v1 only: format 2.0 has no multiValueHeaders in its response either
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((str(name), _header_value(v)) for v in values
                           if (str(name), _header_value(v)) not in headers)
    else:
        headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or ())
    if not any(name.lower() == "content-type" for name, _ in headers):
        # Neither API sends an empty content-type; both default to JSON, as sam local does too.
        headers.append(("content-type", "application/json"))
    raw = (body or "").encode()
    if result.get("isBase64Encoded") and body:
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            return None
    return HttpResponse(status, headers, raw)


def _header_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def response_v2(payload: bytes) -> HttpResponse:
    """HTTP API format 2.0: a dict with `statusCode` is the response; any other JSON value is a
    200 `application/json` whose body is that JSON text (so a returned str keeps its quotes)."""
    try:
        result = json.loads(payload)
    except ValueError:
        return _gateway_error(500, "Internal Server Error")
    if isinstance(result, dict) and "statusCode" in result:
        return _structured(result, multi=False) or _gateway_error(500, "Internal Server Error")
    return HttpResponse(200, list(JSON_HEADERS), payload)


def response_v1(payload: bytes) -> HttpResponse:
    """REST API: only a dict with `statusCode` is valid; anything else is API Gateway's own 502."""
    try:
        result = json.loads(payload)
    except ValueError:
        result = None
    if isinstance(result, dict) and "statusCode" in result:
        response = _structured(result, multi=True)
        if response is not None:
            return response
    return _gateway_error(502, "Internal server error")


# -- events -------------------------------------------------------------------------------------


def event_payload(event: dict[str, Any]) -> tuple[Any, str]:
    """(data as a JSON value, its text as a sender would have written it) for a CloudEvent.

    `data_base64` is decoded: its text is the message; its value is that text parsed as JSON when
    it parses, else the text. A str `data` that is not declared JSON is sent as is, not quoted.
    """
    if "data_base64" in event:
        text = base64.b64decode(event["data_base64"]).decode("utf-8", errors="replace")
        try:
            return json.loads(text), text
        except ValueError:
            return text, text
    data = event.get("data")
    mime = str(event.get("datacontenttype") or "application/json")
    if isinstance(data, str) and "json" not in mime:
        return data, data
    return data, json.dumps(data)


FIFO_SEQUENCE_BASE = 10**19  # SequenceNumber: 20 decimal digits, increasing with the position


def order_value(event: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (`data.order`) of a CloudEvent, or None where there is none.
    `data` is the decoded payload (also for `data_base64`). Written here, not taken from
    chaos/model.py, because runtimes sit below chaos (docs/architecture.md#layers)."""
    value: Any = {**event, "data": event_payload(event)[0]} if "data" in event or "data_base64" in event else event
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def partition_key(event: dict[str, Any], spec: FunctionSpec) -> str:
    """A Kinesis record's partition key: the value at the function's order_key (records of one key are
    ordered, as in a shard), else the event's subject, else its id."""
    if spec.order_key:
        value = order_value(event, spec.order_key)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return str(event.get("subject") or event["id"])


def message_group_id(event: dict[str, Any], path: str) -> str:
    """A FIFO record's MessageGroupId: the order key's value as text (a string as is, anything else as
    JSON). A FIFO queue refuses a message without a group id, so an event with no value at the path
    is its own group: its id (it is then ordered with nothing else, as the chaos model treats it)."""
    value = order_value(event, path)
    if value is None:
        return str(event["id"])
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# CloudEvent extension attributes an SQS send carries to its consumer's records (delivery/sqs_api.py
# writes them; docs/delivery.md#sqs-sends-become-events): the queue's name, the sender's message
# attributes (their JSON, as SendMessage's request had them), MessageGroupId and MessageDeduplicationId.
SQS_QUEUE, SQS_ATTRIBUTES, SQS_GROUP, SQS_DEDUP = "sqsqueue", "sqsattributes", "sqsgroup", "sqsdedup"


def message_attributes_md5(attributes: dict[str, Any]) -> str:
    """MD5OfMessageAttributes, by the algorithm the SQS developer guide documents ("Calculating the MD5
    message digest for message attributes"): attributes sorted by name; each is its name, its data
    type (each a 4-byte big-endian length and UTF-8 bytes), a transport byte (1 for String and
    Number, 2 for Binary) and its value (length and bytes). `attributes` are in SendMessage's form
    (`{"DataType": ..., "StringValue" | "BinaryValue": ...}`), a BinaryValue base64 text as in JSON."""
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)

    def put(data: bytes) -> None:
        digest.update(len(data).to_bytes(4, "big") + data)

    for name in sorted(attributes):
        value = attributes[name]
        kind = str(value.get("DataType", ""))
        put(name.encode())
        put(kind.encode())
        if kind.startswith("Binary"):
            digest.update(b"\x02")
            put(base64.b64decode(value.get("BinaryValue") or ""))
        else:
            digest.update(b"\x01")
            put(str(value.get("StringValue", "")).encode())
    return digest.hexdigest()


def record_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SendMessage's MessageAttributes as a Lambda SQS record writes them (camelCase, empty lists)."""
    shown: dict[str, Any] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = value["BinaryValue"]
        shown[name] = {**entry, "stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
    return shown


def sqs_record(delivery: Delivery, spec: FunctionSpec, sequence: int | None = None) -> dict[str, Any]:
    """One SQS record: messageId is the event id, receiptHandle new on every receive, the receive count
    the attempt. A function with `order_key` reads a FIFO queue (`<name>.fifo`): its records also carry
    MessageGroupId, SequenceNumber (from `sequence`, the event's position; 1 when unknown, as in
    `faasemu invoke`) and MessageDeduplicationId (the event id), as SQS FIFO gives them. An event a
    handler sent with SendMessage (the `sqs*` extensions above) names its queue, and carries the
    sender's message attributes, group id and deduplication id, as the queue would have kept them."""
    import hashlib

    ce = delivery.event
    _, text = event_payload(ce)
    aws_region = region(spec)
    per_attempt = delivery.attempt_id or f"{ce['id']}/{delivery.attempt}"
    digest = hashlib.sha256(f"{per_attempt}\0{ce['id']}".encode()).digest()
    sent = str(int(event_time(ce).timestamp() * 1000))
    attributes = {"ApproximateReceiveCount": str(delivery.attempt), "SentTimestamp": sent}
    queue = str(ce.get(SQS_QUEUE) or spec.name)
    if spec.order_key:
        queue += "" if queue.endswith(".fifo") else ".fifo"
        attributes["SequenceNumber"] = str(FIFO_SEQUENCE_BASE + (1 if sequence is None else sequence))
        attributes["MessageGroupId"] = message_group_id(ce, spec.order_key)
    attributes["SenderId"] = "AIDAFAASEMUSENDER0000"
    if spec.order_key:
        attributes["MessageDeduplicationId"] = str(ce.get(SQS_DEDUP) or ce["id"])
    attributes["ApproximateFirstReceiveTimestamp"] = sent
    sent_attributes = _sent_attributes(ce)
    record: dict[str, Any] = {
        "messageId": ce["id"],
        "receiptHandle": "AQEB" + base64.b64encode(digest * 3).decode(),  # new on every receive
        "body": text,
        "attributes": attributes,
        "messageAttributes": record_attributes(sent_attributes),
        "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{aws_region}:{ACCOUNT}:{queue}",
        "awsRegion": aws_region,
    }
    if sent_attributes:
        record["md5OfMessageAttributes"] = message_attributes_md5(sent_attributes)
    return record


def _sent_attributes(event: dict[str, Any]) -> dict[str, Any]:
    """The message attributes an SQS send carried (the `sqsattributes` extension's JSON), else none."""
    try:
        value = json.loads(str(event.get(SQS_ATTRIBUTES) or "{}"))
    except ValueError:
        return {}
    return {name: entry for name, entry in value.items() if isinstance(entry, dict)} if isinstance(value, dict) else {}


class InvalidBatchResponse(LambdaFault):
    """A `batchItemFailures` answer Lambda cannot read: it then treats the whole batch as failed."""

    error_type = "InvalidBatchResponse"


def batch_failures(result: Any, message_ids: Sequence[str]) -> list[int]:
    """The positions of the records a ReportBatchItemFailures answer names as failed.

    AWS's rules (Lambda developer guide, "Handling errors for an SQS event source", success and
    failure conditions): None, `{}`, an object without `batchItemFailures`, a null or empty list mean
    every record succeeded; the whole batch failed (InvalidBatchResponse) when the answer is not a
    JSON object, `batchItemFailures` is not a list, or an entry lacks a non-empty string
    `itemIdentifier` or names a messageId that is not in the batch.
    """
    failing = "Lambda treats the whole batch as failed"
    if result is None:
        return []
    if not isinstance(result, dict):
        raise InvalidBatchResponse(
            f"the handler returned {_json_kind(result)}, not an object like "
            f'{{"batchItemFailures": [{{"itemIdentifier": "<messageId>"}}]}} (report_batch_item_failures is on); '
            f"{failing}")
    failures = result.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        raise InvalidBatchResponse(f"batchItemFailures is {_json_kind(failures)}, not a list of "
                                   f'{{"itemIdentifier": "<messageId>"}}; {failing}')
    positions: list[int] = []
    for number, entry in enumerate(failures):
        where = f"batchItemFailures[{number}]"
        if not isinstance(entry, dict) or "itemIdentifier" not in entry:
            found = f"keys {', '.join(map(str, entry))}" if isinstance(entry, dict) and entry else _json_kind(entry)
            raise InvalidBatchResponse(f"{where} has no itemIdentifier (found {found}); {failing}")
        identifier = entry["itemIdentifier"]
        if not isinstance(identifier, str) or not identifier:
            raise InvalidBatchResponse(f"{where}.itemIdentifier is {_json_kind(identifier)}, not a messageId of the "
                                       f"batch; {failing}")
        if identifier not in message_ids:
            raise InvalidBatchResponse(f"{where}.itemIdentifier {identifier!r} is not a messageId of this batch "
                                       f"({', '.join(message_ids)}); {failing}")
        position = list(message_ids).index(identifier)
        if position not in positions:
            positions.append(position)
    return sorted(positions)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string" if not value else f"a string ({value[:40]!r})"
    if isinstance(value, dict):
        return "a JSON object"
    return f"a JSON {_JSON_KINDS.get(type(value), type(value).__name__)}"


def delivers_batches(spec: FunctionSpec) -> bool:
    """Whether the bus and `replay` deliver this function's events as SQS batches (the worker's
    `records` operation): an SQS event source with a batch size above 1, partial batch responses,
    or a FIFO queue (`order_key`, whose records carry positions). Otherwise one record per
    invocation, exactly as before batches existed."""
    return spec.options.get("event_source", "eventbridge") == "sqs" and (
        spec.batch_size > 1 or spec.report_batch_item_failures or spec.order_key is not None)


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
    found = f"a JSON {_JSON_KINDS.get(type(data), type(data).__name__)}"
    mime = str(event.get("datacontenttype") or "application/json")
    if isinstance(data, str) and ("data_base64" in event or "json" not in mime):
        found = f"text ({mime})"
    return (f"event {event.get('id')!r} (type {event.get('type')!r}) cannot go to function {spec.name!r} "
            f"(aws-lambda, event_source: eventbridge): its data is {found}, and EventBridge's detail must be "
            f"a JSON object (PutEvents refuses others as MalformedDetail). Send a JSON object as data, or set "
            f"event_source: sqs, sns or raw for {spec.name}")


_NOT_EVENTBRIDGE = (INVOKE_EVENT_TYPE, "faasemu.http.request")
_JSON_KINDS = {str: "string", list: "list", int: "number", float: "number", bool: "boolean"}


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
