"""The netlify runtime: the event netlify dev builds, response and error conversion, routes, the Adapter."""

from __future__ import annotations

import base64
import json
import types
from typing import Any

import pytest

from faasemu.runtimes import netlify
from faasemu.runtimes.base import (ASYNC_HTTP_TYPE, FAILURE_KINDS, Delivery, DeliveryFailed, EntryPointError,
                                   HttpRequest, Invocation)
from faasemu.project.spec import FunctionSpec, HttpTrigger

NOW = 1_700_000_000.0


def make_spec(name: str = "hello", http: tuple[HttpTrigger, ...] = ()) -> FunctionSpec:
    return FunctionSpec(name=name, handler="functions/hello.py:handler", runtime="netlify",
                        handler_file="/proj/functions/hello.py", handler_attr="handler", http=http, memory=1024)


def adapter_for(handler: Any, name: str = "hello") -> netlify.Adapter:
    module = types.ModuleType("hello")
    handler.__module__ = "hello"
    module.handler = handler  # type: ignore[attr-defined]
    adapter = netlify.Adapter(make_spec(name), clock=lambda: NOW)
    adapter.bind(module)
    return adapter


def inv(request_id: str = "req-1") -> Invocation:
    return Invocation(request_id, NOW + 10)


def request(**kw: Any) -> HttpRequest:
    defaults: dict[str, Any] = {
        "method": "GET", "path": "/.netlify/functions/hello", "query": "a=1&a=2&b=x%20y&c",
        "headers": [("host", "localhost:8888"), ("user-agent", "curl/8"), ("x-tag", "one"), ("x-tag", "two"),
                    ("cookie", "s=1"), ("cookie", "theme=dark"), ("user-agent", "second")],
        "source_ip": "10.0.0.9",
    }
    return HttpRequest(**{**defaults, **kw})


# -- routes ----------------------------------------------------------------------------------------


def test_routes_are_under_netlify_functions_and_background_ones_are_async() -> None:
    spec = make_spec(http=(HttpTrigger("/api/hello", ("GET",)),))
    assert netlify.http_routes(spec) == (HttpTrigger("/.netlify/functions/hello"),
                                         HttpTrigger("/.netlify/functions/hello/{path+}"),
                                         HttpTrigger("/api/hello", ("GET",)))
    assert netlify.async_routes(spec) == ()
    background = make_spec("report-background")
    assert netlify.http_routes(background) == ()
    assert netlify.async_routes(background)[0] == HttpTrigger("/.netlify/functions/report-background")


def test_environment() -> None:
    env = netlify.environment(make_spec(), "/proj")
    assert env["NETLIFY_DEV"] == "true" and env["CONTEXT"] == "dev" and env["AWS_LAMBDA_FUNCTION_NAME"] == "hello"


# -- the event ---------------------------------------------------------------------------------------


def test_the_event_has_netlify_devs_shape() -> None:
    event = netlify.build_event(request(path="/.netlify/functions/hello/caf\u00e9"), "01REQ")
    assert list(event) == ["path", "httpMethod", "queryStringParameters", "multiValueQueryStringParameters",
                           "headers", "multiValueHeaders", "body", "isBase64Encoded", "rawUrl", "rawQuery"]
    assert event["path"] == "/.netlify/functions/hello/caf%C3%A9" and event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"a": "1, 2", "b": "x y", "c": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"], "c": [""]}
    assert event["rawQuery"] == "?a=1&a=2&b=x%20y&c"
    assert event["rawUrl"] == "http://localhost:8888/.netlify/functions/hello/caf%C3%A9?a=1&a=2&b=x%20y&c"
    # Node folds repeated headers before Netlify wraps each in a list
    assert event["multiValueHeaders"]["x-tag"] == ["one, two"] and event["headers"]["x-tag"] == "one, two"
    assert event["headers"]["cookie"] == "s=1; theme=dark" and event["headers"]["user-agent"] == "curl/8"
    assert event["headers"]["client-ip"] == event["headers"]["x-nf-client-connection-ip"] == "10.0.0.9"
    assert event["headers"]["x-nf-request-id"] == "01REQ"
    assert json.loads(base64.b64decode(event["headers"]["x-nf-geo"]))["country"]["code"] == "US"
    # no body: body is absent (None) but isBase64Encoded follows the missing content type
    assert event["body"] is None and event["isBase64Encoded"] is True


@pytest.mark.parametrize("content_type, body, expected, is_base64", [
    ("application/json", b'{"a": 1}', '{"a": 1}', False),
    ("text/plain; charset=utf-8", "h\u00e9".encode(), "h\u00e9", False),
    ("application/vnd.api+json", b"{}", "{}", False),
    ("application/x-www-form-urlencoded", b"a=1", "a=1", False),
    ("application/octet-stream", b"\x00\xff", "AP8=", True),
    ("image/png", b"\x89PNG", base64.b64encode(b"\x89PNG").decode(), True),
    (None, b"plain", base64.b64encode(b"plain").decode(), True),
])
def test_bodies_are_text_or_base64_by_content_type(content_type: str | None, body: bytes, expected: str,
                                                   is_base64: bool) -> None:
    headers = [("content-length", str(len(body)))] + ([("content-type", content_type)] if content_type else [])
    event = netlify.build_event(request(method="POST", headers=headers, body=body), "r")
    assert (event["body"], event["isBase64Encoded"]) == (expected, is_base64)


def test_an_empty_declared_body_is_an_empty_string() -> None:
    event = netlify.build_event(request(method="POST", headers=[("content-length", "0"),
                                                                ("content-type", "text/plain")]), "r")
    assert event["body"] == ""


def test_a_bearer_jwt_gives_a_client_context() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"sub": "u-1", "email": "ada@example.com"}).encode()).decode()
    context = netlify.client_context({"authorization": f"Bearer h.{claims.rstrip('=')}.sig"})
    assert context.user == {"sub": "u-1", "email": "ada@example.com"}
    assert context.identity["url"].endswith("/.netlify/identity")
    assert json.loads(base64.b64decode(context.custom["netlify"]))["user"]["sub"] == "u-1"
    assert netlify.client_context({"authorization": "Bearer not-a-jwt"}) is None
    assert netlify.client_context({"authorization": "Basic abc"}) is None


# -- responses ---------------------------------------------------------------------------------------


def test_a_response_dict_becomes_the_http_response() -> None:
    response = netlify.response_of({
        "statusCode": "201", "headers": {"Content-Type": "text/plain", "X-Both": "single"},
        "multiValueHeaders": {"x-both": ["m1", "m2"], "Set-Cookie": ["a=1", "b=2"]}, "body": "made",
    })
    assert response.status == 201 and response.body == b"made"
    assert response.headers == [("Content-Type", "text/plain"), ("x-both", "m1"), ("x-both", "m2"),
                                ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert netlify.response_of({"statusCode": 204}).headers == []  # no default content type
    binary = netlify.response_of({"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(),
                                  "isBase64Encoded": True})
    assert binary.body == b"\x00\xff"


@pytest.mark.parametrize("result, message", [
    (None, "lambda response was undefined"),
    ({"body": "x"}, "numerical statusCode. You gave: undefined"),
    ({"statusCode": 0}, "numerical statusCode. You gave: 0"),
    ({"statusCode": "ok"}, "numerical statusCode. You gave: 'ok'"),
    ("hello", "numerical statusCode. You gave: undefined"),
    ({"statusCode": 200, "body": {"a": 1}}, 'string or a stream body. You gave: {"a": 1}'),
])
def test_invalid_responses_get_netlify_devs_messages(result: Any, message: str) -> None:
    with pytest.raises(netlify.InvalidResponse, match=message.replace("(", r"\(").replace("{", r"\{")):
        netlify.response_of(result)


def test_falsy_bodies_are_empty() -> None:
    for body in ("", None, 0, False):
        assert netlify.response_of({"statusCode": 200, "body": body}).body == b""


# -- errors ---------------------------------------------------------------------------------------------


def failing(event: Any, context: Any) -> Any:
    raise KeyError("missing")


def test_an_exception_is_a_500_in_text_or_html() -> None:
    adapter = adapter_for(failing)
    with pytest.raises(KeyError) as caught:
        adapter.invoke_http(request(), inv())
    text = adapter.error_response(caught.value, inv())
    assert text.status == 500 and text.headers == []
    first, _, stack = text.body.decode().partition("\n")
    assert first == "KeyError: 'missing'" and "in failing" in stack and "runtimes/netlify.py" not in stack
    with pytest.raises(KeyError) as caught:
        adapter.invoke_http(request(headers=[("accept", "text/html,*/*")]), inv())
    page = adapter.error_response(caught.value, inv())
    assert page.header("content-type") == "text/html" and b"&quot;errorType&quot;: &quot;KeyError&quot;" in page.body


@pytest.mark.parametrize("kind, status, first_line", [
    ("timeout", 500, "TimeoutError: Task timed out after 1.00 seconds"),
    ("crash", 500, "Runtime.ExitError: Task timed out after 1.00 seconds"),
    ("oom", 500, "Runtime.OutOfMemory: Task timed out after 1.00 seconds"),
    ("unavailable", 503, "Task timed out after 1.00 seconds"),
])
def test_failures(kind: str, status: int, first_line: str) -> None:
    assert kind in FAILURE_KINDS
    response = netlify.failure_response(kind, "Task timed out after 1.00 seconds", "r")
    assert response.status == status and response.body.decode().splitlines()[0] == first_line


# -- the adapter ----------------------------------------------------------------------------------------


def test_the_handler_gets_the_event_and_a_lambda_context() -> None:
    seen: dict[str, Any] = {}

    def handler(event: Any, context: Any) -> Any:
        seen.update(event=event, context=context)
        return {"statusCode": 200, "body": context.aws_request_id}

    claims = base64.urlsafe_b64encode(b'{"sub":"u"}').decode().rstrip("=")
    response = adapter_for(handler).invoke_http(request(headers=[("authorization", f"Bearer h.{claims}.s")]),
                                                inv("req-7"))
    assert response.body == b"req-7"
    context = seen["context"]
    assert context.function_name == "hello" and context.memory_limit_in_mb == "1024"
    assert context.get_remaining_time_in_millis() == 10_000 and context.client_context.user == {"sub": "u"}


def test_async_handlers_are_awaited() -> None:
    async def handler(event: Any, context: Any) -> Any:
        return {"statusCode": 202, "body": "later"}

    assert adapter_for(handler).invoke_http(request(), inv()).status == 202


def test_bind_names_what_it_found() -> None:
    module = types.ModuleType("hello")
    module.other = lambda event, context: None  # type: ignore[attr-defined]
    module.other.__module__ = "hello"
    with pytest.raises(EntryPointError, match="no function 'handler'. Found: other"):
        netlify.Adapter(make_spec()).bind(module)


CLOUD_EVENT = {"specversion": "1.0", "id": "evt-1", "source": "auth", "type": "user.signed_up",
               "datacontenttype": "application/json", "data": {"plan": "pro"}}


def test_an_event_is_a_webhook_post_and_non_2xx_fails_it() -> None:
    seen: list[Any] = []

    def handler(event: Any, context: Any) -> Any:
        seen.append(event)
        return {"statusCode": 200 if len(seen) == 1 else 500}

    adapter = adapter_for(handler)
    adapter.deliver(Delivery(CLOUD_EVENT, 1, "a1"), inv("a1"))
    with pytest.raises(DeliveryFailed, match="answered 500"):
        adapter.deliver(Delivery(CLOUD_EVENT, 2, "a2"), inv("a2"))
    first, second = seen
    assert first["httpMethod"] == "POST" and first["path"] == "/.netlify/functions/hello"
    assert json.loads(first["body"]) == {"plan": "pro"} and first["isBase64Encoded"] is False
    assert first["headers"]["ce-id"] == second["headers"]["ce-id"] == "evt-1"
    assert first["headers"]["x-nf-request-id"] != second["headers"]["x-nf-request-id"]  # a new request each time


def test_a_background_request_runs_its_return_value_ignored() -> None:
    seen: list[Any] = []

    def handler(event: Any, context: Any) -> Any:
        seen.append(event)
        return {"statusCode": 500}

    accepted = request(method="POST", headers=[("content-type", "application/json"), ("content-length", "2")],
                       body=b"{}", route="/.netlify/functions/report-background")
    data = {**accepted.to_wire(), "body_base64": base64.b64encode(b"{}").decode()}
    delivery = Delivery({"specversion": "1.0", "id": "call-1", "type": ASYNC_HTTP_TYPE, "source": "x", "data": data})
    adapter = adapter_for(handler, "report-background")
    adapter.deliver(delivery, inv("attempt-1"))
    adapter.deliver(delivery, inv("attempt-2"))
    assert seen[0]["body"] == "{}" and seen[0]["httpMethod"] == "POST"
    assert seen[0]["headers"]["x-nf-request-id"] == seen[1]["headers"]["x-nf-request-id"]  # the same request
