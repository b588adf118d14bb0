"""The aws-lambda runtime: pure conversions, and the Adapter with small handler modules."""

from __future__ import annotations

import base64
import decimal
import hashlib
import importlib.util
import json
import os
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from faasemu.runtimes import aws_apigw as apigw
from faasemu.runtimes import aws_lambda as aws
from faasemu.runtimes.base import FAILURE_KINDS, Delivery, EntryPointError, HttpRequest, Invocation
from faasemu.project.spec import FunctionSpec, HttpTrigger

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def make_spec(**options: str) -> FunctionSpec:
    return FunctionSpec(
        name="orders", handler="sample_functions/orders.py:create_order", runtime="aws-lambda",
        handler_file="/proj/sample_functions/orders.py", handler_attr="create_order",
        http=(HttpTrigger("/orders/{id}", ("GET", "POST")), HttpTrigger("/any/{rest+}")),
        memory=256, options=dict(options),
    )


def module_with(**functions: Any) -> types.ModuleType:
    module = types.ModuleType("handlers")
    for name, fn in functions.items():
        fn.__module__ = "handlers"
        setattr(module, name, fn)
    return module


def adapter_for(handler: Any, **options: str) -> aws.Adapter:
    spec = make_spec(**options)
    adapter = aws.Adapter(spec, clock=lambda: NOW)
    adapter.bind(module_with(create_order=handler))
    return adapter


def inv(request_id: str = "req-1", deadline: float = NOW + 3, attempt: int = 1) -> Invocation:
    return Invocation(request_id, deadline, attempt)


def request(**kw: Any) -> HttpRequest:
    defaults: dict[str, Any] = {
        "method": "GET", "path": "/orders/42", "query": "a=1&a=2&b=x%20y",
        "headers": [("host", "localhost:8080"), ("user-agent", "curl/8"), ("x-tag", "one"), ("x-tag", "two"),
                    ("cookie", "s=1; theme=dark")],
        "route": "/orders/{id}", "path_params": {"id": "42"}, "source_ip": "10.0.0.9", "time_ms": 1_583_348_638_390,
    }
    return HttpRequest(**{**defaults, **kw})


def echo(event: Any, context: Any) -> Any:
    return {"event": event}


# -- request events -----------------------------------------------------------------------------


def test_v2_event_shape() -> None:
    event = apigw.build_v2_event(request(), "req-1", "GET /orders/{id}")
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /orders/{id}"
    assert event["rawPath"] == "/orders/42"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["cookies"] == ["s=1", "theme=dark"]
    assert event["headers"] == {"host": "localhost:8080", "user-agent": "curl/8", "x-tag": "one,two"}
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["pathParameters"] == {"id": "42"}
    assert "body" not in event and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {"method": "GET", "path": "/orders/42", "protocol": "HTTP/1.1", "sourceIp": "10.0.0.9",
                           "userAgent": "curl/8"}
    assert ctx["domainName"] == "localhost" and ctx["domainPrefix"] == "localhost"
    assert ctx["time"] == "04/Mar/2020:19:03:58 +0000" and ctx["timeEpoch"] == 1_583_348_638_390
    assert ctx["stage"] == "$default" and ctx["routeKey"] == "GET /orders/{id}" and ctx["requestId"] == "req-1"


def test_v2_event_omits_what_is_absent() -> None:
    event = apigw.build_v2_event(request(query="", headers=[], path_params={}), "r", "$default")
    assert "cookies" not in event and "queryStringParameters" not in event and "pathParameters" not in event
    assert event["headers"] == {} and event["requestContext"]["http"]["userAgent"] == ""


def test_route_key() -> None:
    spec = make_spec()
    assert apigw.route_key(spec, request()) == "GET /orders/{id}"
    assert apigw.route_key(spec, request(method="PUT", route="/any/{rest+}")) == "ANY /any/{rest+}"
    assert apigw.route_key(spec, request(route="")) == "$default"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b'{"a": 1}', ('{"a": 1}', False)),
        ("text/plain; charset=utf-8", "héllo".encode(), ("héllo", False)),
        ("application/vnd.api+json", b"{}", ("{}", False)),
        (None, b"plain", ("plain", False)),
        ("application/octet-stream", b"abc", ("YWJj", True)),
        ("application/x-www-form-urlencoded", b"a=1", ("YT0x", True)),
        ("text/plain", b"\xff\xfe", ("//4=", True)),
        (None, b"\x89PNG", ("iVBORw==", True)),
    ],
)
def test_body_encoding(content_type: str | None, body: bytes, expected: tuple[str, bool]) -> None:
    headers = [("content-type", content_type)] if content_type else []
    assert apigw.encode_body(HttpRequest("POST", "/", headers=headers, body=body)) == expected


def test_v2_binary_body_is_base64() -> None:
    req = request(method="POST", body=b"\x00\x01\xff", headers=[("content-type", "image/png")])
    event = apigw.build_v2_event(req, "r", "POST /x")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x00\x01\xff"


def test_v1_event_shape() -> None:
    event = apigw.build_v1_event(request(method="POST", body=b'{"n": 1}'), "req-1")
    assert event["resource"] == "/orders/{id}" and event["path"] == "/orders/42" and event["httpMethod"] == "POST"
    assert event["headers"]["x-tag"] == "two"  # the last value wins
    assert event["multiValueHeaders"]["x-tag"] == ["one", "two"]
    assert event["headers"]["cookie"] == "s=1; theme=dark"
    assert event["queryStringParameters"] == {"a": "2", "b": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    assert event["pathParameters"] == {"id": "42"} and event["stageVariables"] is None
    assert event["body"] == '{"n": 1}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["resourcePath"] == "/orders/{id}" and ctx["httpMethod"] == "POST" and ctx["path"] == "/orders/42"
    assert ctx["requestId"] == "req-1" and ctx["requestTimeEpoch"] == 1_583_348_638_390
    assert ctx["identity"]["sourceIp"] == "10.0.0.9" and ctx["identity"]["userAgent"] == "curl/8"


def test_v1_event_nulls() -> None:
    event = apigw.build_v1_event(request(query="", path_params={}), "r")
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None and event["body"] is None


# -- responses ----------------------------------------------------------------------------------


def test_v2_structured_response() -> None:
    response = adapter_for(lambda e, c: {
        "statusCode": 201, "headers": {"x-id": 7, "content-type": "text/plain"}, "body": "made",
        "cookies": ["a=1; Path=/", "b=2"],
    }).invoke_http(request(), inv())
    assert response.status == 201 and response.body == b"made"
    assert response.headers == [("x-id", "7"), ("content-type", "text/plain"), ("set-cookie", "a=1; Path=/"),
                                ("set-cookie", "b=2")]


def test_v2_structured_defaults_and_base64() -> None:
    response = adapter_for(lambda e, c: {"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(),
                                         "isBase64Encoded": True}).invoke_http(request(), inv())
    assert response.body == b"\x00\xff" and response.header("content-type") == "application/json"
    empty = adapter_for(lambda e, c: {"statusCode": 204}).invoke_http(request(), inv())
    assert empty.status == 204 and empty.body == b""


@pytest.mark.parametrize(
    ("result", "body"),
    [({"ok": True}, b'{"ok": true}'), ([1, 2], b"[1, 2]"), ("hi", b'"hi"'), (3, b"3"), (None, b"null")],
)
def test_v2_inferred_response(result: Any, body: bytes) -> None:
    response = adapter_for(lambda e, c: result).invoke_http(request(), inv())
    assert (response.status, response.header("content-type"), response.body) == (200, "application/json", body)


def test_v2_malformed_structured_response() -> None:
    response = adapter_for(lambda e, c: {"statusCode": 200, "body": {"not": "a string"}}).invoke_http(request(), inv())
    assert response.status == 500 and json.loads(response.body) == {"message": "Internal Server Error"}


def test_v1_response() -> None:
    response = adapter_for(lambda e, c: {
        "statusCode": 200, "headers": {"a": "1"}, "multiValueHeaders": {"set-cookie": ["x=1", "y=2"], "a": ["1"]},
        "body": "ok",
    }, payload="v1").invoke_http(request(), inv())
    assert response.status == 200 and response.body == b"ok"
    assert response.headers == [("a", "1"), ("set-cookie", "x=1"), ("set-cookie", "y=2"),
                                ("content-type", "application/json")]


@pytest.mark.parametrize("result", [{"ok": True}, "hi", None, [1], {"statusCode": 200, "body": 5}])
def test_v1_without_status_code_is_gateway_502(result: Any) -> None:
    response = adapter_for(lambda e, c: result, payload="v1").invoke_http(request(), inv())
    assert response.status == 502 and json.loads(response.body) == {"message": "Internal server error"}


def test_handler_receives_v2_event_and_request_time_defaults_to_clock() -> None:
    seen: list[Any] = []
    adapter = adapter_for(lambda e, c: seen.append(e))
    adapter.invoke_http(request(time_ms=0), inv())
    assert seen[0]["requestContext"]["timeEpoch"] == int(NOW * 1000)


# -- errors -------------------------------------------------------------------------------------


def failing(event: Any, context: Any) -> Any:
    raise ValueError("bad order")


def test_error_response_and_payload() -> None:
    # Issue 8: API Gateway never passes the runtime's error document on. HTTP API (v2, the default)
    # answers 500 {"message":"Internal Server Error"}; the error is in faasemu's own header.
    adapter = adapter_for(failing)
    with pytest.raises(ValueError) as caught:
        adapter.invoke_http(request(), inv("req-9"))
    response = adapter.error_response(caught.value, inv("req-9"))
    assert response.status == 500 and response.header("content-type") == "application/json"
    assert response.body == b'{"message":"Internal Server Error"}'
    assert response.header("x-faasemu-error") == "ValueError: bad order"
    body = adapter.error_payload(caught.value, inv("req-9"))
    assert list(body) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert body["errorMessage"] == "bad order" and body["errorType"] == "ValueError" and body["requestId"] == "req-9"
    # only the user's frames, formatted as traceback.format_list does
    assert len(body["stackTrace"]) == 1 and "in failing" in body["stackTrace"][0]
    assert body["stackTrace"][0].startswith(f'  File "{__file__}"')


def test_error_response_behind_a_rest_api_is_502() -> None:
    adapter = adapter_for(failing, payload="v1")
    with pytest.raises(ValueError) as caught:
        adapter.invoke_http(request(), inv("req-9"))
    response = adapter.error_response(caught.value, inv("req-9"))
    assert response.status == 502 and response.body == b'{"message": "Internal server error"}'
    assert response.header("x-faasemu-error") == "ValueError: bad order"


def test_error_header_is_one_line_of_ascii_and_trimmed() -> None:
    assert aws.error_header("KeyError: 'caf\u00e9'\nsecond line\r\x00") == "KeyError: 'caf\\xe9' second line"
    assert aws.error_header("x" * 2000).endswith("...") and len(aws.error_header("x" * 2000)) == 512
    assert aws.error_header("no route for [/orders]") == "no route for [/orders]"


def test_failure_responses() -> None:
    timeout = aws.failure_response("timeout", "Task timed out after 3.00 seconds", "r1")
    assert timeout.status == 504 and json.loads(timeout.body) == {
        "errorMessage": "RequestId: r1 Error: Task timed out after 3.00 seconds", "errorType": "Sandbox.Timedout"}
    assert aws.failure_response("crash", "Runtime exited: exit status 1", "r1").status == 502
    assert aws.failure_payload("crash", "x", "r1")["errorType"] == "Runtime.ExitError"
    assert aws.failure_payload("oom", "x", "r1")["errorType"] == "Runtime.OutOfMemory"
    unavailable = aws.failure_response("unavailable", "SyntaxError: invalid syntax (app.py:3)", "r1")
    assert unavailable.status == 503 and json.loads(unavailable.body) == {
        "errorMessage": "invalid syntax (app.py:3)", "errorType": "Runtime.UserCodeSyntaxError"}
    assert aws.failure_payload("unavailable", "ModuleNotFoundError: No module named 'x'", "r")["errorType"] == (
        "Runtime.ImportModuleError")
    assert aws.failure_payload("unavailable", "KeyError: 'TABLE'", "r")["errorType"] == "KeyError"
    assert aws.failure_payload("unavailable", "it broke", "r") == {"errorMessage": "it broke",
                                                                    "errorType": "Runtime.Unknown"}
    for kind in FAILURE_KINDS:
        assert aws.failure_response(kind, "m", "r").header("content-type") == "application/json"


# -- invoke_raw ---------------------------------------------------------------------------------


def test_invoke_raw_round_trip() -> None:
    adapter = adapter_for(lambda e, c: {"got": e, "uni": "é", "price": decimal.Decimal("1.10")})
    assert json.loads(adapter.invoke_raw(b'{"a": 1}', inv())) == {"got": {"a": 1}, "uni": "é", "price": 1.1}
    out = adapter.invoke_raw(b"", inv())
    assert b'"got": {}' in out and b'"price": 1.10' in out  # exact Decimal digits, as simplejson writes them
    assert adapter_for(lambda e, c: None).invoke_raw(b"", inv()) == b"null"
    assert adapter_for(lambda e, c: b"\x00raw").invoke_raw(b"", inv()) == b"\x00raw"  # bytes pass untouched


def test_marshal_unicode_follows_execution_env() -> None:
    assert aws.marshal("é") == b'"\\u00e9"'
    assert aws.marshal("é", ascii_only=False) == '"é"'.encode()
    assert aws.escapes_unicode("AWS_Lambda_python3.11") and not aws.escapes_unicode("AWS_Lambda_python3.12")
    assert aws.marshal(decimal.Decimal("NaN")) == b"NaN"


def test_invoke_raw_marshal_error() -> None:
    adapter = adapter_for(lambda e, c: {1, 2})
    with pytest.raises(aws.MarshalError) as caught:
        adapter.invoke_raw(b"{}", inv("r"))
    assert adapter.error_payload(caught.value, inv("r")) == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError", "requestId": "r", "stackTrace": []}


def test_invoke_raw_unmarshal_error() -> None:
    with pytest.raises(aws.UnmarshalError) as caught:
        adapter_for(echo).invoke_raw(b"{nope", inv())
    payload = aws.error_payload(caught.value, inv("r"))
    assert payload["errorType"] == "Runtime.UnmarshalError"
    assert payload["errorMessage"].startswith("Unable to unmarshal input: ")


# -- context ------------------------------------------------------------------------------------


def test_context_attributes_and_remaining_time() -> None:
    now = [NOW]
    adapter = aws.Adapter(make_spec(), clock=lambda: now[0])
    seen: list[Any] = []
    adapter.bind(module_with(create_order=lambda e, c: seen.append(c)))
    adapter.invoke_raw(b"{}", inv("req-7", deadline=NOW + 2.5))
    ctx = seen[0]
    assert ctx.aws_request_id == "req-7" and ctx.function_name == "orders" and ctx.function_version == "$LATEST"
    assert ctx.invoked_function_arn == "arn:aws:lambda:us-east-1:000000000000:function:orders"
    assert ctx.memory_limit_in_mb == "256" and ctx.log_group_name == "/aws/lambda/orders"
    assert ctx.log_stream_name.startswith("2023/11/14/[$LATEST]")
    assert ctx.identity.cognito_identity_id is None and ctx.client_context is None
    assert ctx.get_remaining_time_in_millis() == 2500
    now[0] += 1.0
    assert ctx.get_remaining_time_in_millis() == 1500
    now[0] += 10
    assert ctx.get_remaining_time_in_millis() == 0


# -- events -------------------------------------------------------------------------------------

CLOUD_EVENT = {"specversion": "1.0", "id": "evt-1", "source": "shop/orders", "type": "order.created",
               "time": "2024-05-01T12:30:45.123Z", "datacontenttype": "application/json",
               "subject": "order 42", "data": {"order": 42}}


def test_eventbridge_event() -> None:
    event = aws.build_event("eventbridge", Delivery(CLOUD_EVENT, 1, "aaaa"), make_spec())
    assert event == {"version": "0", "id": "evt-1", "detail-type": "order.created", "source": "shop/orders",
                     "account": "000000000000", "time": "2024-05-01T12:30:45Z", "region": "us-east-1",
                     "resources": [], "detail": {"order": 42}}


def test_sqs_event_per_attempt_fields() -> None:
    first = aws.build_event("sqs", Delivery(CLOUD_EVENT, 1, "aaaa"), make_spec())["Records"][0]
    second = aws.build_event("sqs", Delivery(CLOUD_EVENT, 2, "bbbb"), make_spec())["Records"][0]
    again = aws.build_event("sqs", Delivery(CLOUD_EVENT, 1, "aaaa"), make_spec())["Records"][0]
    assert first["messageId"] == second["messageId"] == "evt-1"
    assert first["receiptHandle"] != second["receiptHandle"] and first["receiptHandle"] == again["receiptHandle"]
    assert first["attributes"]["ApproximateReceiveCount"] == "1"
    assert second["attributes"]["ApproximateReceiveCount"] == "2"
    assert first["body"] == '{"order": 42}' and json.loads(first["body"]) == {"order": 42}
    assert first["md5OfBody"] == hashlib.md5(first["body"].encode()).hexdigest()
    assert first["eventSource"] == "aws:sqs" and first["awsRegion"] == "us-east-1"
    assert first["eventSourceARN"] == "arn:aws:sqs:us-east-1:000000000000:orders"
    assert first["attributes"]["SentTimestamp"] == "1714566645123"


def test_sns_event() -> None:
    record = aws.build_event("sns", Delivery(CLOUD_EVENT, 1, "a"), make_spec())["Records"][0]
    sns = record["Sns"]
    assert record["EventSource"] == "aws:sns"
    assert sns["Type"] == "Notification" and sns["MessageId"] == "evt-1" and sns["Subject"] == "order 42"
    assert json.loads(sns["Message"]) == {"order": 42} and sns["Timestamp"] == "2024-05-01T12:30:45.123Z"
    assert sns["TopicArn"] == "arn:aws:sns:us-east-1:000000000000:orders"


def test_raw_event_and_base64_data() -> None:
    assert aws.build_event("raw", Delivery(CLOUD_EVENT), make_spec()) == {"order": 42}
    binary = {**{k: v for k, v in CLOUD_EVENT.items() if k != "data"},
              "data_base64": base64.b64encode(b"hello there").decode()}
    assert aws.build_event("raw", Delivery(binary), make_spec()) == "hello there"
    assert aws.build_event("sqs", Delivery(binary), make_spec())["Records"][0]["body"] == "hello there"
    assert aws.build_event("sns", Delivery(binary), make_spec())["Records"][0]["Sns"]["Message"] == "hello there"
    text = {**CLOUD_EVENT, "datacontenttype": "text/plain", "data": "plain words"}
    assert aws.build_event("sqs", Delivery(text), make_spec())["Records"][0]["body"] == "plain words"


def test_deliver_calls_handler_and_propagates_errors() -> None:
    seen: list[Any] = []
    adapter = adapter_for(lambda e, c: seen.append((e, c.aws_request_id)) or "ignored", event_source="sqs")
    assert adapter.deliver(Delivery(CLOUD_EVENT, 3, "cccc"), inv("d-3", attempt=3)) is None
    assert seen[0][0]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "3" and seen[0][1] == "d-3"
    with pytest.raises(ValueError):
        adapter_for(failing).deliver(Delivery(CLOUD_EVENT), inv())


# -- environment and binding --------------------------------------------------------------------


def test_environment() -> None:
    env = aws.environment(make_spec(), "/proj", clock=lambda: NOW)
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "orders" and env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"
    assert env["LAMBDA_TASK_ROOT"] == "/proj" and env["_HANDLER"] == "sample_functions/orders.create_order"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/orders"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].startswith("2023/11/14/[$LATEST]") and env["TZ"] == ":UTC"
    assert all(isinstance(value, str) for value in env.values())


def test_environment_region_and_module_handler() -> None:
    spec = FunctionSpec("f", "pkg.orders:create", "aws-lambda", handler_module="pkg.orders", handler_attr="create",
                        env={"AWS_REGION": "eu-west-1"})
    env = aws.environment(spec, "/proj")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1" and env["_HANDLER"] == "pkg.orders.create"
    assert aws.function_arn(spec) == "arn:aws:lambda:eu-west-1:000000000000:function:f"


def test_http_routes() -> None:
    assert aws.http_routes(make_spec()) == make_spec().http


def load_file(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bind_names_what_was_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "sample_functions" / "orders.py"
    source.parent.mkdir()
    source.write_text(textwrap.dedent("""
        import json
        from os.path import join
        TABLE = {}
        def create_order(event, context): return 1
        def list_orders(event, context): return 2
        def _helper(): pass
    """))
    monkeypatch.chdir(tmp_path)
    module = load_file(source)
    typo = FunctionSpec("orders", "x", "aws-lambda", handler_file=str(source), handler_attr="create_ordr")
    with pytest.raises(EntryPointError) as caught:
        aws.Adapter(typo).bind(module)
    assert str(caught.value) == (
        f"sample_functions{os.sep}orders.py has no function 'create_ordr'. Found: create_order, list_orders.")
    not_callable = FunctionSpec("orders", "x", "aws-lambda", handler_file=str(source), handler_attr="TABLE")
    with pytest.raises(EntryPointError, match="'TABLE' is a dict, not a function"):
        aws.Adapter(not_callable).bind(module)
    ok = aws.Adapter(FunctionSpec("orders", "x", "aws-lambda", handler_file=str(source), handler_attr="list_orders"))
    ok.bind(module)
    assert ok.invoke_raw(b"", inv()) == b"2"


# -- request ids, EventBridge's detail, client context, log tail (issue 8) -----------------------


def test_request_id_is_a_uuid4_of_the_copy_for_async_sources_and_of_the_attempt_for_sqs() -> None:
    import uuid

    event = {"id": "e-1", "type": "order.created"}
    bridge, sqs = make_spec(), make_spec(event_source="sqs")
    first = aws.request_id(bridge, 7, event, 0, 1)
    assert uuid.UUID(first).version == 4 and str(uuid.UUID(first)) == first
    assert aws.request_id(bridge, 7, event, 0, 3) == first  # Lambda's async retry keeps it
    assert aws.request_id(bridge, 7, event, 1, 1) != first  # a duplicate from the source is a new invocation
    assert aws.request_id(bridge, 8, event, 0, 1) != first  # seeded
    assert aws.request_id(sqs, 7, event, 0, 1) != aws.request_id(sqs, 7, event, 0, 2)  # every receive
    assert aws.request_id(sqs, 7, event, 0, 2) == aws.request_id(sqs, 7, event, 0, 2)  # pure
    invoked = {"id": "0b5c2d5e-58a8-4e4f-9d35-3a1f0c5d7e21", "type": aws.INVOKE_EVENT_TYPE}
    assert aws.request_id(bridge, 7, invoked, 0, 2) == invoked["id"]  # the id the Invoke API answered


@pytest.mark.parametrize(("event", "refused"), [
    ({"data": {"a": 1}}, None), ({}, None), ({"data": None}, None),
    ({"data_base64": base64.b64encode(b'{"a": 1}').decode()}, None),
    ({"data": [1]}, "a JSON list"), ({"data": "s"}, "a JSON string"), ({"data": 1.5}, "a JSON number"),
    ({"data": True}, "a JSON boolean"), ({"data": "hi", "datacontenttype": "text/plain"}, "text (text/plain)"),
    ({"data_base64": base64.b64encode(b"\x00\x01").decode()}, "text (application/json)"),
])
def test_refuse_event_applies_eventbridges_detail_rule(event: dict[str, Any], refused: str | None) -> None:
    event = {"id": "e-1", "type": "t", **event}
    reason = aws.refuse_event(make_spec(), event)
    assert (reason is None) if refused is None else (refused in str(reason) and "'orders'" in str(reason))
    for source in ("sqs", "sns", "raw"):
        assert aws.refuse_event(make_spec(event_source=source), event) is None


def test_an_event_without_data_has_an_empty_detail() -> None:
    delivery = Delivery({"id": "e", "type": "t", "time": "2024-01-01T00:00:00Z"})
    event = aws.build_event("eventbridge", delivery, make_spec())
    assert event["detail"] == {}


def test_client_context_is_built_as_awslambdaric_builds_it() -> None:
    encoded = base64.b64encode(json.dumps({"custom": {"k": 1}, "env": {"locale": "en"},
                                           "client": {"app_title": "app"}}).encode()).decode()
    seen: list[Any] = []
    adapter = adapter_for(lambda e, c: seen.append(c.client_context))
    adapter.invoke_raw(b"{}", Invocation("r", NOW + 3, 1, client_context=encoded))
    adapter.invoke_raw(b"{}", inv())
    assert (seen[0].custom, seen[0].env, seen[0].client.app_title) == ({"k": 1}, {"locale": "en"}, "app")
    assert seen[0].client.installation_id is None and seen[1] is None


def test_log_tail_keeps_only_the_invocations_output() -> None:
    def talk(event: Any, context: Any) -> Any:
        print("said", event["n"])
        return None

    spec = make_spec()
    streams = sys.stdout, sys.stderr
    adapter = aws.Adapter(spec, clock=lambda: NOW, capture_output=True)
    adapter.bind(module_with(create_order=talk))
    try:
        print("before")
        adapter.invoke_raw(b'{"n": 1}', inv())
        assert adapter.last_log == b"said 1\n"
        adapter.invoke_raw(b'{"n": 2}', inv())
        assert adapter.last_log == b"said 2\n"
    finally:
        sys.stdout, sys.stderr = streams
    assert adapter_for(talk).last_log is None  # outside a worker nothing is captured
